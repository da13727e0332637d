"""Rule plot_means: the cluster-mean images of one fit, labelled by majority test digit;
degenerate components (N·π_k < 2) framed in red."""

from bmm import params_table, storage
from bmm.em import degenerate_components
from bmm.metrics import cluster_labels
from bmm.pipeline import job
from bmm.report import figures

with job(snakemake) as log:
    model, meta = params_table.model_from_params(snakemake.input.params)
    X, y = storage.load_binarized(snakemake.input.test, packed=True)
    labels = cluster_labels(y, model.predict(X))
    degenerate = degenerate_components(model.weights_, meta["fit"]["n_samples"])
    c = meta["config"]
    n_train = c["n_train"] or "all"
    title = f"Cluster means, K={c['K']} ({c['variant']}, seed {c['seed']}, n_train={n_train})"
    if degenerate.any():
        title += f"; {degenerate.sum()} degenerate (N·π < 2)"
    figures.cluster_means(
        model.weights_, model.means_, snakemake.output.figure, labels, title, degenerate
    )
    log(f"majority test label per cluster: {labels}")
    log(f"degenerate components (N·π_k < 2): {[int(k) for k in degenerate.nonzero()[0]]}")

"""Rule plot_means: the cluster means of one data set's fits, one figure per K, each
component labelled by the majority test label (when the set has labels); degenerate
components (N·π_k < 2) framed in red. Without an image shape, a K×D heat map."""

from bmm import io, params_table, storage
from bmm.engine import degenerate_components
from bmm.metrics import cluster_labels
from bmm.pipeline import job
from bmm.report import figures

with job(snakemake) as log:
    X, y = storage.load_binarized(snakemake.input.test, packed=True)
    data = io.read_metadata(snakemake.input.test)
    names = data["label_names"]
    for key, figure in snakemake.output.items():
        model, meta = params_table.model_from_params(snakemake.input[key])
        labels = None
        if y is not None:
            majority = cluster_labels(y, model.predict(X))
            labels = {k: names[v] if names else v for k, v in majority.items()}
        degenerate = degenerate_components(model.weights_, meta["fit"]["n_samples"])
        c = meta["config"]
        n_train = c["n_train"] or "all"
        title = f"Cluster means, K={c['K']} ({c['variant']}, seed {c['seed']}, n_train={n_train})"
        if degenerate.any():
            title += f"; {degenerate.sum()} degenerate (N·π < 2)"
        figures.cluster_means(
            model.weights_, model.means_, figure, labels, title, degenerate, data["image_shape"]
        )
        log(f"K={c['K']}: majority test label per cluster: {labels}")
        log(f"degenerate components (N·π_k < 2): {[int(k) for k in degenerate.nonzero()[0]]}")

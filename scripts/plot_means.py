"""Rule plot_means: the cluster-mean images of one fit, labelled by majority test digit."""

from bmm import experiment, mnist
from bmm.metrics import cluster_labels
from bmm.pipeline import job
from bmm.report import figures

with job(snakemake) as log:
    model, meta = experiment.model_from_params(snakemake.input.params)
    X, y = mnist.load_binarized(snakemake.input.test, dtype=bool)
    labels = cluster_labels(y, model.predict(X))
    c = meta["config"]
    n_train = c["n_train"] or "all"
    title = f"Cluster means, K={c['K']} ({c['variant']}, seed {c['seed']}, n_train={n_train})"
    figures.cluster_means(model.weights_, model.means_, snakemake.output.figure, labels, title)
    log(f"majority test label per cluster: {labels}")

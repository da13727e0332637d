"""Rule binarize: parse the IDX files strictly, threshold, subset, write bit-packed Parquet."""

from pathlib import Path

from bmm import mnist, provenance
from bmm.pipeline import job

with job(snakemake) as log:
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    threshold = mnist.resolve_threshold(p.threshold)
    for split, n in (("train", p.n_train), ("test", p.n_test)):
        paths = i[f"{split}_images"], i[f"{split}_labels"]
        images, labels = mnist.load_split(*paths)
        keep = mnist.stratified_subset(labels, n, p.seed)
        X = mnist.binarize(images[keep], threshold)
        sources = {Path(path).name: provenance.sha256_file(path) for path in paths}
        meta = provenance.collect(dict(p.items()), sources, split=split, threshold=threshold)
        mnist.write_binarized(o[split], X, labels[keep], meta)
        log(f"{split}: {len(keep)} of {len(labels)} images, {X.mean():.3f} of pixels on")

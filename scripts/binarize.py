"""Rule binarize: parse the IDX files strictly, threshold, subset, write bit-packed Parquet.

All four files are read and checked before either output is written, so a bad file (a
truncated gzip, a wrong magic number, images and labels that do not match) stops the job
with an error naming it and leaves neither output behind.
"""

from pathlib import Path

from bmm import mnist, provenance
from bmm.pipeline import job

with job(snakemake) as log:
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    threshold = mnist.resolve_threshold(p.threshold)
    splits = mnist.load_splits({key: i[key] for key in mnist.FILES})
    try:
        for split, n in (("train", p.n_train), ("test", p.n_test)):
            images, labels = splits[split]
            keep = mnist.stratified_subset(labels, n, p.seed)
            X = mnist.binarize(images[keep], threshold)
            paths = i[f"{split}_images"], i[f"{split}_labels"]
            sources = {Path(path).name: provenance.sha256_file(path) for path in paths}
            meta = provenance.collect(dict(p.items()), sources, split=split, threshold=threshold)
            mnist.write_binarized(o[split], X, labels[keep], meta)
            log(f"{split}: {len(keep)} of {len(labels)} images, {X.mean():.3f} of pixels on")
    except BaseException:
        for path in o:  # one output without the other is no valid result
            Path(path).unlink(missing_ok=True)
        raise

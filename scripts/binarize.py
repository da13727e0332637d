"""Rule binarize: parse the IDX files strictly, threshold, subset, write bit-packed Parquet.

All four files are read and checked before either output is written, so a bad file (a
truncated gzip, a wrong magic number, images and labels that do not match) stops the job
with an error naming it and leaves neither output behind.
"""

from pathlib import Path

from bmm import idx, provenance, storage
from bmm.datasets import MNIST, ROLES
from bmm.pipeline import job

with job(snakemake) as log:
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    threshold = storage.resolve_threshold(p.threshold)
    splits = idx.load_splits({role: i[role] for role in ROLES}, MNIST.image_shape, 10)
    try:
        for split, n in (("train", p.n_train), ("test", p.n_test)):
            images, labels = splits[split]
            keep = storage.stratified_subset(labels, n, p.seed)
            X = storage.binarize(images[keep], threshold)
            paths = i[f"{split}_images"], i[f"{split}_labels"]
            sources = {Path(path).name: provenance.sha256_file(path) for path in paths}
            meta = provenance.collect(dict(p.items()), sources, split=split, threshold=threshold)
            storage.write_binarized(
                o[split],
                X,
                labels[keep],
                meta,
                image_shape=images.shape[1:],
                label_names=MNIST.label_names,
            )
            log(f"{split}: {len(keep)} of {len(labels)} images, {X.mean():.3f} of pixels on")
    except BaseException:
        for path in o:  # one output without the other is no valid result
            Path(path).unlink(missing_ok=True)
        raise

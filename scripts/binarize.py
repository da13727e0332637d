"""Rule binarize: one data set's training and test images, binarised and bit-packed.

An IDX set: its four files are parsed strictly and checked against each other, then
thresholded. The user's own data: read and checked value by value (0/1), then split into
training and test rows. Everything is read and checked before either output is written, so a
bad file stops the job with one line naming it and leaves neither output behind.
"""

from pathlib import Path

from bmm import datasets, idx, own_data, provenance, storage
from bmm.pipeline import job

with job(snakemake) as log:
    i, o, p = snakemake.input, snakemake.output, snakemake.params.data
    s = datasets.from_config(snakemake.wildcards.dataset, snakemake.config)
    sha256 = {Path(path).name: provenance.sha256_file(path) for path in i}
    if isinstance(s, datasets.IDXSet):
        threshold = storage.resolve_threshold(p["threshold"])
        n_labels = len(s.label_names) if s.label_names else None
        paths = {role: i[role] for role in datasets.ROLES}
        splits = idx.load_splits(paths, s.image_shape, n_labels)
        shape, names = splits["train"][0].shape[1:], s.label_names
        # each split's provenance: its own two files
        mine = {
            split: [Path(paths[f"{split}_{k}"]).name for k in ("images", "labels")]
            for split in splits
        }
        sources = {split: {name: sha256[name] for name in mine[split]} for split in splits}
    else:
        threshold = None  # already 0/1
        X, labels, names = own_data.load(s)
        shape = s.image_shape
        rows = own_data.split(len(X), labels, s.test_fraction, p["seed"])
        splits = {k: (X[r], None if labels is None else labels[r]) for k, r in rows.items()}
        sources = {split: sha256 for split in splits}
    try:
        for split in ("train", "test"):
            images, labels = splits[split]
            keep = storage.subset(len(images), labels, p[f"n_{split}"], p["seed"])
            X = images[keep] if threshold is None else storage.binarize(images[keep], threshold)
            meta = provenance.collect(p, sources[split], split=split, threshold=threshold)
            y = None if labels is None else labels[keep]
            storage.write_binarized(o[split], X, y, meta, image_shape=shape, label_names=names)
            log(f"{split}: {len(keep)} of {len(images)} images, {X.mean():.3f} of pixels on")
    except BaseException:
        for path in o:  # one output without the other is no valid result
            Path(path).unlink(missing_ok=True)
        raise

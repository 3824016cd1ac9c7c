"""What convzoo knows of each data set an entry names, one record each (stdlib only): how people and the
Hugging Face Hub name it, the credit a card gives it, and whether its test split is on this machine for
`convzoo eval` (downloaded sets are not tested here). Where the files are is ``convzoo.data``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSet:
    name: str  # as registry entries name it
    title: str  # as people read it
    hub_id: str | None = None  # the Hub's dataset id, linked from cards ("owner/name"); None: not on the Hub
    credit: str = ""  # the card's credit line
    local_test: bool = False  # `convzoo eval` measures it offline (export evaluates right after writing)


DATASETS: dict[str, DataSet] = {d.name: d for d in (
    DataSet("fashion-mnist", "Fashion-MNIST", "zalando-datasets/fashion_mnist",
            "Fashion-MNIST: H. Xiao, K. Rasul, R. Vollgraf, \"Fashion-MNIST: a Novel Image Dataset for "
            "Benchmarking Machine Learning Algorithms\", 2017; Zalando SE, MIT licence.", local_test=True),
    DataSet("mnist", "MNIST", "ylecun/mnist"),
    DataSet("cifar10", "CIFAR-10", "uoft-cs/cifar10"),
    DataSet("imagenet", "ImageNet-1k", "ILSVRC/imagenet-1k",
            "Weights: torchvision (BSD-3-Clause), trained on ImageNet-1k (O. Russakovsky et al., IJCV 2015)."),
    DataSet("isbi2012-em", "ISBI 2012 EM segmentation (held-out training sections)", "isbi2012-em",
            "ISBI 2012 EM data: A. Cardona et al., PLoS Biology 2010; I. Arganda-Carreras et al., "
            "Frontiers in Neuroanatomy 2015.", local_test=True),
    DataSet("style-content-photos", "style-content-photos", None,
            "Content photos: scikit-image's bundled images; paintings: public domain (see "
            "convzoo/assets/styles/SOURCES.md)."),
)}


def get(name: str) -> DataSet:
    """The record of ``name``; a data set convzoo does not know (a user's own) is named by itself."""
    return DATASETS.get(name) or DataSet(name, name)

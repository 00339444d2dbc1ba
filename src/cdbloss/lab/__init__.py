"""The cdbloss lab: the experiment system around the library.

Datasets and their imbalance protocols (:mod:`cdbloss.lab.data`), the paper's models
(:mod:`cdbloss.lab.models`), the training engine with configs and checkpoints
(:mod:`cdbloss.lab.engine`), sweeps and reports (:mod:`cdbloss.lab.experiments`) and the
``cdbloss`` command line (:mod:`cdbloss.lab.cli`).

The library itself (``import cdbloss``: the losses, :class:`cdbloss.CDBWeighting`, the
tracker, the sampler) needs only torch and numpy and never imports this package. The lab
needs the ``lab`` extra::

    pip install "cdb-loss[lab]"
"""

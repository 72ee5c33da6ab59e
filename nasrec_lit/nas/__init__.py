"""NAS for CTR models: the NASRec space (`space`), the weight-sharing supernet (`supernet`), the search kernel
(`search`), NASRec's pipeline (`nasrec`), a source with a known best architecture (`teacher`), Rankitect's
families (`rankitect`), the AutoML searcher (`automl`), PIM co-design (`pim`). Every public name of these modules is importable from here; a module is imported on the
first use of one of its names (see `core.lazy_exports`)."""
from nasrec_lit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, ["space", "supernet", "search", "nasrec", "teacher", "rankitect", "automl", "pim"])

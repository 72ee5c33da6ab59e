"""User models: SUM's upstream user model and embeddings (`sum`) and SOAP's asynchronous serving (`soap`). Every
public name of these modules is importable from here; a module is imported on the first use of one of its names
(see `core.lazy_exports`)."""
from nasrec_lit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, ["sum", "soap"])

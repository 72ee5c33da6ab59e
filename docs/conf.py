# Sphinx configuration of the offline docs site (`make docs`). The sources are nbdev-processed notebooks
# that docs/build.py converts into `_build/src`; nothing is executed here (outputs come from the notebooks).
project = "nasrec_lit"
author = "nasrec_lit developers"
copyright = "2026 onwards, nasrec_lit developers"
extensions = ["myst_nb"]
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "html_image"]
html_theme = "furo"
html_title = "nasrec_lit"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
# show_doc headings start at H3 under the notebook's H1 title; nbdev's own output uses raw HTML tables
suppress_warnings = ["myst.header", "myst.xref_missing"]
nb_mime_priority_overrides = [("html", "text/markdown", 5)]

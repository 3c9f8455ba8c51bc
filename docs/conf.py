"""Sphinx configuration of the tinyvae website; ``python docs/build_site.py`` runs Sphinx with it.

The pages come from ``build/site-src/``, staged by ``docs/build_site.py``. Everything the pages load
is served from the site itself: MathJax 3 from ``sphinx-mathjax-offline``, the theme (Furo) from its
package, no notebook-widget scripts from a CDN.
"""

import importlib.util
from pathlib import Path

project = "tinyvae"
author = "tinyvae contributors"
copyright = "tinyvae contributors, MIT license"

extensions = ["myst_nb"]  # Markdown (MyST) pages and .ipynb notebooks

# MathJax 3.2 from the sphinx-mathjax-offline package, copied into _static/mathjax. Its files are used
# directly rather than through its Sphinx extension, which does not declare itself safe for parallel
# reading (so Sphinx would read the pages one at a time), and which picks the CHTML output below.
_MATHJAX = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static"

# Markdown: $...$ and $$...$$ math, and ```math fenced blocks (the repository's convention) read as the
# {math} directive. Links are written by build_site.py as plain relative URLs to .html pages.
myst_enable_extensions = ["dollarmath"]
myst_fence_as_directive = ["math"]
myst_all_links_external = True
myst_heading_anchors = 3

# Notebooks are shown with their stored outputs; the site build never executes them.
nb_execution_mode = "off"
nb_merge_streams = True
# A widget (tqdm's notebook progress bar) needs require.js and a widget manager, which MyST-NB would
# load from a CDN: none is loaded, and a widget output shows its text form ("100%|██████| 5/5").
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("*", "application/vnd.jupyter.widget-view+json", None)]

html_theme = "furo"
html_title = "tinyvae"
html_static_path = ["_static", str(_MATHJAX)]
html_css_files = ["site.css"]
html_js_files = ["site.js"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None

# MathJax: SVG output (no web fonts, which browsers refuse to load from file:// pages); an undefined
# macro is an error node, not red text, so that the browser tests see it.
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {"tex": {"packages": {"[-]": ["noundefined"]}},
                   "svg": {"fontCache": "global"}}  # glyphs defined once per page, not in every equation

suppress_warnings = ["myst.header"]


def setup(app):
    # The side-by-side pages hold their equations in raw HTML, which Sphinx does not count as math.
    app.set_html_assets_policy("always")

"""`esteira dashboard`: a read-only web page of the whole loop (runs, CT, gates, aliases,
monitoring, serving), server-rendered with inline SVG charts, served on 127.0.0.1.

data, observed   read the stores into records (read-only; a missing store stays missing)
charts           inline SVG: line, bar, heatmap
layout           the page around a view, and the HTML pieces views share
pages, usage_pages   the views
app              the FastAPI routes
"""

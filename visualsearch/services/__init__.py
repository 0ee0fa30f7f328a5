"""The work of the visual-search app, as plain functions that views, admin, API,
commands and jobs call: :mod:`.indexing` (embedding the catalogue), :mod:`.search`
(nearest neighbours under filters), :mod:`.vector_index` (one HNSW index per encoder) and
:mod:`.jobs` (reindexing in the background)."""

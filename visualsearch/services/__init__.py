"""The work of the visual-search app, as plain functions that views, admin, API,
commands and jobs call: :mod:`.vector_index` (one HNSW index per encoder) and
:mod:`.vectors` (stored vectors read in binary). Embedding the catalogue, in the
foreground or as a job, is :mod:`visualsearch.indexing`; search is
:mod:`visualsearch.search`, which :mod:`.search` re-exports for code written before."""

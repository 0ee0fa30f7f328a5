"""The work of the visual-search app, as plain functions that views, admin, API,
commands and jobs call: :mod:`.indexing` (embedding the catalogue), :mod:`.vector_index`
(one HNSW index per encoder), :mod:`.vectors` (stored vectors read in binary) and
:mod:`.jobs` (reindexing in the background). Search is :mod:`visualsearch.search`;
:mod:`.search` re-exports it for code written before."""

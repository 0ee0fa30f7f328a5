from tests.visualsearch.conftest import catalogue, pixel_encoder  # noqa: F401 (fixtures)

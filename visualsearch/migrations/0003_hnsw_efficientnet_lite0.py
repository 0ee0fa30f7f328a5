from django.db import migrations

# The default encoder's HNSW index (see visualsearch.services.vector_index): a partial
# expression index, so vectors of other encoders (other sizes) share the table. Other
# encoders get theirs from `manage.py vector_index --encoder NAME`.
CREATE = (
    "CREATE INDEX IF NOT EXISTS visualsearch_hnsw_efficientnet_lite0_1280 "
    "ON visualsearch_productembedding USING hnsw "
    "((embedding::vector(1280)) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
    "WHERE encoder = 'efficientnet_lite0'"
)
DROP = "DROP INDEX IF EXISTS visualsearch_hnsw_efficientnet_lite0_1280"


class Migration(migrations.Migration):
    dependencies = [("visualsearch", "0002_embeddings")]
    operations = [migrations.RunSQL(CREATE, DROP)]

"""What the recommendations app does, as plain functions; views, admin, API and
commands only call these.

* :mod:`.matrix` — events to the ``user_items`` matrix the recommenders learn from.
* :mod:`.training` — train, evaluate, store and activate a model; the training job.
* :mod:`.serving` — the active model in each process, popularity, purchases.
* :mod:`.simulation` — simulated shoppers with a known taste, for demos and tuning.
"""

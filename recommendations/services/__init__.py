"""What the recommendations app does, as plain functions; views, admin, API and
commands only call these.

* :mod:`.matrix` — events to the ``user_items`` matrix the recommenders learn from.
* :mod:`.training` — train, evaluate, store and activate a model; the training job.
* :mod:`.serving` — the active model in each process, popularity, purchases.
* :mod:`.profiles` — finding and publishing blend profiles.

The blends themselves are :mod:`recommendations.blending`; offline work (the blend's
evaluation, simulated shoppers) is :mod:`recommendations.offline`. ``blend``,
``blend_eval`` and ``simulation`` here re-export them for code written before.
"""

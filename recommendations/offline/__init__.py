"""Offline work, apart from what the shop serves: the blend's evaluation
(:mod:`.blend_evaluation`) and the simulated shoppers (:mod:`.simulation`). The pure
cores they share with training, data sets (:mod:`recommendations.datasets`) and metrics
(:mod:`recommendations.evaluation`), stay beside the recommenders."""

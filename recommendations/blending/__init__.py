"""Blend visual similarity, collaborative filtering, popularity and recency into one list.

The "Similar items" strip of a product page (:func:`.blend.blend_similar`) and the "For
you" strip of the home page (:func:`.blend.recommend_for_user`) are both built in four
steps, read top to bottom in this package:

* :mod:`.core` -- the vocabulary (components, reasons, diversity methods, rules, the
  default profile) and the arithmetic of steps 2 to 4, on arrays;
* :mod:`.candidates` -- step 1 and the raw scores of step 2, written once over a
  :class:`~.candidates.CandidateSource`;
* :mod:`.live` -- the source the shop serves from (database, pgvector, the active model);
* :mod:`.asof` -- the source of the offline evaluation: the shop as it was at a cutoff
  (:mod:`recommendations.offline.blend_evaluation`);
* :mod:`.blend` -- the widgets' entry points and their :class:`~.blend.Recommendation`.

1. **Candidates.** Every source proposes up to ``RECOMMENDATIONS_BLEND_CANDIDATES``
   products: the nearest visual neighbours (pgvector) of the product, or of the
   shopper's recent products; the active ALS model's similar items of the same
   product(s); in "For you", the products most often looked at together with the
   shopper's recent ones (:mod:`.covisitation`); the ALS model's top items for the
   shopper (a signed-in user, or an anonymous session once it has a few events: the
   model folds the session in); the popular products; the newest products. The last two
   make sure a strip is never empty: with no model, no embeddings and no events, the
   newest products remain.

2. **Components.** Each candidate gets one raw score per component:

   ``visual``
       cosine similarity of its embedding (``VISUALSEARCH_ENCODER``) to the product's,
       or to the mean of the shopper's recent products' embeddings; computed for every
       candidate that has an embedding, not only for the visual neighbours;
   ``collaborative``
       ALS item-item similarity to the product (the best over the recent products);
   ``affinity``
       the ALS score of the item for the shopper;
   ``popularity``
       the event-kind weighted count of its events (``RECOMMENDATIONS_EVENT_WEIGHTS``)
       over the last ``RECOMMENDATIONS_POPULAR_DAYS`` days; products without events have
       no score;
   ``recency``
       ``0.5 ** (age in whole days / RECOMMENDATIONS_RECENCY_HALF_LIFE_DAYS)``; whole
       days, so that products created together tie instead of being ranked by the
       milliseconds between their inserts;
   ``covisitation``
       how many shoppers of the training window had both the candidate and the product
       (summed over the recent products), from the table stored with the active model;
       meant for a shopper with one or two events, for whom ALS has little to fold in
       (the default profile weighs it 0: see "Blending on the demo's simulated shoppers"
       in docs/figures.md).

   **Normalisation (one rule for every component): min-max within the candidate set.**
   A component's raw scores are mapped linearly so that the lowest score among the
   candidates becomes 0 and the highest 1. A candidate the component did not score
   (outside a source's top list, no embedding, no events) takes the component's lowest
   score, since all a top list says about it is "no better than the last one listed";
   it therefore normalises to 0. When every scored candidate has the same score, the
   component only tells scored from unscored candidates: scored ones get 1 and unscored
   ones 0, or everyone 0 when every candidate was scored (the component then cannot tell
   them apart and adds nothing). Min-max, unlike a rank transform, keeps how much better
   the best candidates are; doing it within the candidate set makes scales as different
   as cosine similarities, ALS dot products and event counts comparable.

3. **Weighted sum.** The profile's weights (:class:`~recommendations.models.BlendProfile`,
   scaled to sum to 1) multiply the normalised components; a candidate's score is their
   sum, in [0, 1]. Its ``components`` are the weighted terms, and its reason is the one
   of the largest term: "Looks similar", "Shoppers who viewed this also viewed",
   "Picked for you", "Popular now", "New in" or "Often viewed together"; a product
   nobody had interacted with yet, whose collaborative term is predicted from its looks,
   says "Matches the taste of shoppers who viewed this" instead. A candidate with no
   term above zero (a fallback) takes the reason of the source that proposed it.

4. **Rules and diversity.** Inactive products never appear; depending on the profile,
   out-of-stock products, products the shopper bought and the current product (on a
   product page; the shopper's recent products in "For you") are left out before
   scoring. The ranked list is then re-ranked for diversity by the profile's method:

   ``mmr``
       maximal marginal relevance (Carbonell & Goldstein 1998): pick, one at a time,
       the candidate maximising ``lambda * relevance - (1 - lambda) * max similarity to
       those already picked``, relevance being the score over the best score and
       similarity the cosine of visual embeddings (for a product without an embedding:
       1 within its category, 0 across); ``lambda`` is the profile's parameter, 1
       meaning relevance only;
   ``category_cap``
       walk the ranked list and keep at most ``parameter`` products per category; the cap
       is relaxed only when the candidates cannot otherwise fill the ``k`` slots;
   ``none``
       keep the ranking.

Steps 2 to 4 on arrays (:func:`~.core.normalise`, :func:`~.core.combine`,
:func:`~.core.reasons`, :func:`~.core.diversify`) know nothing of the database, and step 1
asks its source for every piece of data, so the offline evaluation scores exactly the code
the shop serves.

Profiles are read from the database on every call, so a newly published default is
served at once.

This package's ``__init__`` imports only :mod:`.core`: the model imports the vocabulary
while apps load, before the serving modules could be imported.
"""

from .core import *  # noqa: F403
from .core import __all__  # noqa: F401

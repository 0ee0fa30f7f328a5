"""Settings of the recommendations app (``RECOMMENDATIONS_*``), read on every access.

One settings object, :data:`app_settings`, built from five groups: events, training,
serving, blending and offline work. Each setting is a property with its default
(:class:`lookalike.conf.AppSettings`); a project setting with the prefix that no property
reads is reported by a system check (``recommendations.W001``).
"""

from pathlib import Path

from lookalike.conf import AppSettings


class EventSettings(AppSettings):
    """Which shopper actions count, and how much one shopper can weigh."""

    @property
    def EVENT_WEIGHTS(self):
        """Confidence given to each event kind when events become a user-item matrix."""
        weights = {"view": 1.0, "similar_click": 2.0, "cart": 4.0, "purchase": 8.0}
        weights.update(self._setting("EVENT_WEIGHTS", {}))
        return weights

    @property
    def VIEW_WINDOW_SECONDS(self):
        """A product page counts once per shopper and product within this many seconds
        (reloads and loops do not make a product popular); 0 counts every view."""
        return self._setting("VIEW_WINDOW_SECONDS", 30 * 60)

    @property
    def ASYNC_VIEW_COMMIT(self):
        """Whether a page view is committed without waiting for PostgreSQL to flush
        it to disk (``synchronous_commit = off`` for that transaction alone):
        milliseconds off a product page where the disk flushes slowly, nothing where
        it flushes fast; a crash of the database server may lose its last fraction
        of a second of views, never a cart or a purchase
        (:mod:`recommendations.events`)."""
        return self._setting("ASYNC_VIEW_COMMIT", True)

    @property
    def CLICK_SOURCES(self):
        """``?from=`` values that make a product view a "similar" click: the plugins' own
        links (the Find-similar page, photo search and both widgets) plus any the shop adds."""
        return self._setting("CLICK_SOURCES", ("similar", "photo", "similar-widget", "for-you"))

    @property
    def BOT_USER_AGENTS(self):
        """Regular expression (case-insensitive) of user agents whose requests never count
        as events: crawlers and scripts that say what they are."""
        return self._setting(
            "BOT_USER_AGENTS",
            r"bot\b|crawl|spider|slurp|facebookexternalhit|preview|monitor|curl/|wget/"
            r"|python-requests|python-urllib|go-http-client|okhttp|httpclient|scrapy",
        )

    @property
    def MAX_CELL_WEIGHT(self):
        """Most weight one shopper's events on one product can carry in the interaction
        matrix and in popularity (16: a purchase and a cart plus a few views)."""
        return self._setting("MAX_CELL_WEIGHT", 16.0)

    @property
    def MAX_SHOPPER_WEIGHT(self):
        """Most weight one shopper's whole row can carry in the interaction matrix; a
        heavier row is scaled down, so one session cannot steer the model."""
        return self._setting("MAX_SHOPPER_WEIGHT", 400.0)

    @property
    def MAX_CLIENT_SHOPPERS(self):
        """How many shoppers the anonymous sessions of one client address weigh as
        together, however many sessions it started (1). On each product they count as
        their heaviest session (the sum of their N heaviest, N this number), in "Popular
        now", the blend's popularity and the interaction matrix, where they are one row
        whose total is capped at N times ``MAX_SHOPPER_WEIGHT``: a script that starts a
        new session every two requests weighs what one of its sessions does. Signed-in
        users and events without an address (older ones, simulated shoppers) count per
        shopper. ``None`` or 0 counts every session as a shopper, as before.
        See :mod:`recommendations.services.clients`."""
        return self._setting("MAX_CLIENT_SHOPPERS", 1)

    @property
    def CLIENT_SESSION_RATE(self):
        """How many new anonymous sessions one client address may start counting in a
        period, as a DRF rate (``"30/hour"``); ``None`` turns the limit off. Beyond it a
        cookie-less first view starts no session (no session row is written) and a session
        the shop started otherwise records no event until the next period; the page is
        served as always. Counted in ``RECOMMENDATIONS_CLIENT_CACHE``."""
        return self._setting("CLIENT_SESSION_RATE", "30/hour")

    @property
    def CLIENT_CACHE(self):
        """Alias (in ``CACHES``) of the cache that counts ``CLIENT_SESSION_RATE``; shared by
        every process (a database or Redis cache), or each process gets its own allowance.
        When it cannot count (Redis down), sessions are counted as if there were no limit."""
        return self._setting("CLIENT_CACHE", "default")


class TrainingSettings(AppSettings):
    """Training the ALS model and keeping its artefacts."""

    @property
    def HALF_LIFE_DAYS(self):
        """Half-life of an event's weight in days; ``None`` turns time decay off."""
        return self._setting("HALF_LIFE_DAYS", 30)

    @property
    def TRAINING_WINDOW_DAYS(self):
        """Train on events of the last N days; ``None`` uses every event."""
        return self._setting("TRAINING_WINDOW_DAYS", None)

    @property
    def ALS_PARAMETERS(self):
        """Default ALS parameters of ``train_recommender`` and the admin's "Train now"."""
        params = {"factors": 32, "regularization": 5.0, "alpha": 10.0, "iterations": 15}
        params.update(self._setting("ALS_PARAMETERS", {}))
        return params

    @property
    def ARTIFACT_DIR(self):
        """Where trained model artefacts (``.npz``) are written."""
        return Path(self._setting("ARTIFACT_DIR", self._var_path("recommender")))


class ServingSettings(AppSettings):
    """Serving the active model, the widgets and the API."""

    @property
    def MIN_SESSION_EVENTS(self):
        """Events a shopper the model has not seen needs before "For you" personalises."""
        return self._setting("MIN_SESSION_EVENTS", 2)

    @property
    def SHOPPER_EVENTS(self):
        """How many of a shopper's latest events a request reads to personalise
        (:mod:`recommendations.services.shoppers`); their purchases are all read anyway."""
        return self._setting("SHOPPER_EVENTS", 1000)

    @property
    def RELOAD_CHECK_SECONDS(self):
        """How often (at most) a serving process asks the database which model is active."""
        return self._setting("RELOAD_CHECK_SECONDS", 5.0)

    @property
    def POPULAR_CACHE_SECONDS(self):
        """How long a process reuses its ranking of popular products and its snapshot of
        the products the widgets may show (``recommendations.services.eligibility``)."""
        return self._setting("POPULAR_CACHE_SECONDS", 60.0)

    @property
    def WIDGET_SIZE(self):
        """Products in a "Similar items" / "For you" strip unless the tag says ``k=``."""
        return self._setting("WIDGET_SIZE", 12)

    @property
    def API_MAX_K(self):
        """Largest ``k`` the recommendations API accepts."""
        return self._setting("API_MAX_K", 50)


class BlendingSettings(AppSettings):
    """The blend of the widgets (see :mod:`recommendations.blending`)."""

    @property
    def BLEND_CANDIDATES(self):
        """Candidates each source (visual, collaborative, affinity, popular, newest) adds."""
        return self._setting("BLEND_CANDIDATES", 60)

    @property
    def BLEND_HISTORY(self):
        """Latest distinct products of a shopper that stand for their current taste."""
        return self._setting("BLEND_HISTORY", 5)

    @property
    def COVISITATION_NEIGHBOURS(self):
        """Most co-visited products kept per product in a trained model's artefact
        (:mod:`recommendations.blending.covisitation`)."""
        return self._setting("COVISITATION_NEIGHBOURS", 100)

    @property
    def POPULAR_DAYS(self):
        """Window of the blend's popularity component, in days; ``None`` counts every event."""
        return self._setting("POPULAR_DAYS", 30)

    @property
    def RECENCY_HALF_LIFE_DAYS(self):
        """Age (days since the product was created) at which its recency score halves."""
        return self._setting("RECENCY_HALF_LIFE_DAYS", 30)


class OfflineSettings(AppSettings):
    """Offline work: the simulated shoppers."""

    @property
    def SIMULATION_DIR(self):
        """Where ``simulate_shoppers`` writes the ground-truth tastes of its shoppers."""
        return Path(self._setting("SIMULATION_DIR", self._var_path("simulation")))


class RecommendationsSettings(
    EventSettings, TrainingSettings, ServingSettings, BlendingSettings, OfflineSettings
):
    prefix = "RECOMMENDATIONS_"


app_settings = RecommendationsSettings()

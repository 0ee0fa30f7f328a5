from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import formats, timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from lookalike.conf import app_settings as lookalike_settings

from .blending.core import (
    COMPONENTS,
    DEFAULT_DIVERSITY_PARAMS,
    DEFAULT_WEIGHTS,
    MAX_WEIGHT,
)
from .blending.segment_weights import clean_segment_weights
from .names import name_error


class Event(models.Model):
    """One shopper interaction with a product: the raw material of the recommender.

    Anonymous shoppers are identified by their session key so that their clicks can
    personalise recommendations before they sign in. ``client`` says which address sent
    the event, so that the many sessions of one address weigh as one shopper
    (:mod:`recommendations.services.clients`).
    """

    class Kind(models.TextChoices):
        VIEW = "view", _("Viewed")
        SIMILAR_CLICK = "similar_click", _("Clicked a similar item")
        CART = "cart", _("Added to cart")
        PURCHASE = "purchase", _("Purchased")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        verbose_name=_("user"),
    )
    session_key = models.CharField(_("session key"), max_length=40, blank=True, db_index=True)
    product = models.ForeignKey(
        lookalike_settings.product_model_reference(),
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("product"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(_("created at"), db_index=True)
    # Where the click came from (a widget, "find similar"), for analysis.
    source = models.CharField(_("source"), max_length=50, blank=True)
    # A keyed hash of the client's address (recommendations.events.hash_client_address),
    # never the address; empty for events recorded before it was stored and for those
    # made by commands (simulated shoppers), which count per shopper. Nothing filters on
    # it (popularity and training group by it), so it has no index. The database default
    # lets COPY and raw inserts that do not name it (simulate_shoppers) leave it empty.
    client = models.CharField(
        _("client"), max_length=40, blank=True, default="", db_default="", editable=False
    )
    # Events made by `simulate_shoppers` are marked so they are never mistaken for real ones.
    simulated = models.BooleanField(_("simulated"), default=False)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self):
        if self.user_id:
            who = gettext("user %(id)s") % {"id": self.user_id}
        else:
            who = gettext("session %(key)s") % {"key": self.session_key[:8]}
        return gettext("%(who)s: %(kind)s, product %(product)s") % {
            "kind": self.get_kind_display(),
            "product": self.product_id,
            "who": who,
        }


class RecommenderModel(models.Model):
    """One trained collaborative-filtering model: its artefact, data and figures.

    Every training adds a row with the next version; older rows and their artefacts
    are kept so that the admin can roll back. Exactly one row is active (a partial
    unique constraint enforces it) and serving processes load that one.

    The artefact is fully written before the row exists (see
    :func:`recommendations.services.training.train`), so a row always points to a
    complete file and serving never sees half a model.
    """

    version = models.PositiveIntegerField(_("version"), unique=True)
    trained_at = models.DateTimeField(_("trained at"), default=timezone.now)
    data_from = models.DateTimeField(
        _("data from"), null=True, blank=True, help_text=_("Time of the oldest event trained on.")
    )
    data_to = models.DateTimeField(
        _("data to"),
        null=True,
        blank=True,
        help_text=_(
            "Time of the newest event trained on; newer events refresh shoppers' "
            "factors at serving time."
        ),
    )
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    n_users = models.PositiveIntegerField(_("users"), default=0)
    n_items = models.PositiveIntegerField(_("items"), default=0)
    n_interactions = models.PositiveIntegerField(
        _("interactions"), default=0, help_text=_("Distinct (shopper, product) pairs.")
    )
    n_events = models.PositiveIntegerField(_("events"), default=0)
    evaluation = models.JSONField(
        _("evaluation"),
        default=dict,
        blank=True,
        help_text=_("Holdout figures of this model and of the popularity baseline."),
    )
    artifact_path = models.CharField(
        _("artifact path"),
        max_length=500,
        help_text=_("The .npz artefact, relative to RECOMMENDATIONS_ARTIFACT_DIR."),
    )
    training_seconds = models.FloatField(_("training seconds"), default=0.0)
    is_active = models.BooleanField(_("is active"), default=False)
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        ordering = ["-version"]
        verbose_name = _("recommender model")
        verbose_name_plural = _("recommender models")
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="recommendations_one_active_model",
            )
        ]

    def __str__(self):
        if self.is_active:
            return gettext("Recommender v%(version)s (active)") % {"version": self.version}
        return gettext("Recommender v%(version)s") % {"version": self.version}

    @property
    def artifact_file(self):
        """Absolute path of the artefact."""
        from .conf import app_settings

        path = Path(self.artifact_path)
        return path if path.is_absolute() else app_settings.ARTIFACT_DIR / path

    def activate(self):
        """Make this version the one served, in one transaction.

        The previously active row is switched off first so that the partial unique
        constraint holds at every statement; a reader sees either the old or the new
        active row, never none or two.
        """
        if not self.artifact_file.exists():
            raise FileNotFoundError(
                f"The artefact of version {self.version} is missing ({self.artifact_file})."
            )
        with transaction.atomic():
            # Serialise concurrent activations: both would otherwise clear and set.
            list(RecommenderModel.objects.select_for_update().filter(is_active=True))
            RecommenderModel.objects.filter(is_active=True).exclude(pk=self.pk).update(
                is_active=False
            )
            self.activated_at = timezone.now()
            self.is_active = True
            RecommenderModel.objects.filter(pk=self.pk).update(
                is_active=True, activated_at=self.activated_at
            )


class BlendProfile(models.Model):
    """How the "Similar items" and "For you" widgets blend their sources.

    Scores from each source (visual similarity, collaborative filtering, the shopper's
    category/price affinity, popularity, recency, co-visitation) are mixed with these weights, then
    diversified and filtered by the rules. One profile is the default (a partial unique
    constraint); others can be tried and compared through their ``metrics``. The names
    and defaults come from :mod:`recommendations.blending.core`.
    """

    class Diversity(models.TextChoices):
        NONE = "none", _("None")
        MMR = "mmr", _("Maximal marginal relevance")
        CATEGORY_CAP = "category_cap", _("Cap per category")

    name = models.SlugField(
        _("name"),
        max_length=50,
        unique=True,
        help_text=_("Lowercase letters, digits, hyphens and underscores, e.g. summer-visual."),
    )
    is_default = models.BooleanField(_("is default"), default=False)
    visual_weight = models.FloatField(
        _("visual weight"),
        default=DEFAULT_WEIGHTS["visual"],
        help_text=_("How much looking like the product (or the shopper's recent ones) counts."),
    )
    collaborative_weight = models.FloatField(
        _("collaborative weight"),
        default=DEFAULT_WEIGHTS["collaborative"],
        help_text=_(
            "How much being viewed and bought by the same shoppers counts (the trained "
            "model's product-to-product similarity)."
        ),
    )
    affinity_weight = models.FloatField(
        _("affinity weight"),
        default=DEFAULT_WEIGHTS["affinity"],
        help_text=_("How much the trained model's guess of this shopper's taste counts."),
    )
    popularity_weight = models.FloatField(
        _("popularity weight"),
        default=DEFAULT_WEIGHTS["popularity"],
        help_text=_("How much being popular with all shoppers lately counts."),
    )
    recency_weight = models.FloatField(
        _("recency weight"),
        default=DEFAULT_WEIGHTS["recency"],
        help_text=_("How much being new in the catalogue counts."),
    )
    covisitation_weight = models.FloatField(
        _("co-visitation weight"),
        default=DEFAULT_WEIGHTS["covisitation"],
        help_text=_(
            "How much being looked at by the same shoppers as the shopper's recent products "
            "counts (counted, not learned)."
        ),
    )
    diversity = models.CharField(
        _("diversity"), max_length=20, choices=Diversity.choices, default=Diversity.MMR
    )
    diversity_param = models.FloatField(
        _("diversity setting"),
        default=DEFAULT_DIVERSITY_PARAMS["mmr"],
        help_text=_(
            "Maximal marginal relevance: from 0 to 1, how much relevance counts against "
            "variety (1: relevance only). Cap per category: the most products of one "
            "category in a strip."
        ),
    )
    in_stock_only = models.BooleanField(_("in stock only"), default=True)
    exclude_purchased = models.BooleanField(_("exclude purchased"), default=True)
    exclude_current = models.BooleanField(
        _("exclude current"),
        default=True,
        help_text=_("Leave the product being viewed out of its own widgets."),
    )
    segments = models.JSONField(
        _("segment weights"),
        default=dict,
        blank=True,
        help_text=_(
            "Weights that replace the ones above for a segment of requests: cold_item (a "
            "product nobody had interacted with when the model was trained) and "
            "new_shopper (a shopper with at most two events), with the components visual, "
            "collaborative, affinity, popularity, recency and covisitation; for example "
            '{"cold_item": {"visual": 0.8}}. The missing components keep the weights above.'
        ),
    )
    metrics = models.JSONField(
        _("metrics"),
        default=dict,
        blank=True,
        help_text=_("The offline figures the profile was published with (notebook 02)."),
    )
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    WEIGHT_FIELDS = tuple(f"{component}_weight" for component in COMPONENTS)

    class Meta:
        ordering = ["name"]
        verbose_name = _("blend profile")
        verbose_name_plural = _("blend profiles")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="recommendations_one_default_blend",
            ),
            models.CheckConstraint(
                condition=models.Q(visual_weight__gte=0)
                & models.Q(collaborative_weight__gte=0)
                & models.Q(affinity_weight__gte=0)
                & models.Q(popularity_weight__gte=0)
                & models.Q(recency_weight__gte=0)
                & models.Q(covisitation_weight__gte=0),
                name="recommendations_blend_weights_nonnegative",
            ),
        ]

    def __str__(self):
        if self.is_default and self.name != "default":
            return gettext("%(name)s (default)") % {"name": self.name}
        return self.name

    def diversity_setting_display(self):
        """The diversity setting as shown: a cap per category as a whole number ("3")."""
        value, capped = self.diversity_param, self.diversity == self.Diversity.CATEGORY_CAP
        return str(int(value)) if capped and value == int(value) else formats.localize(value)

    @property
    def weights(self):
        """``{"visual": w, "collaborative": w, ...}``."""
        return {f.removesuffix("_weight"): getattr(self, f) for f in self.WEIGHT_FIELDS}

    def clean(self):
        errors = {}
        if message := name_error(self.name):
            errors["name"] = message
        elif (
            self.name
            and BlendProfile.objects.filter(name__iexact=self.name).exclude(pk=self.pk).exists()
        ):
            errors["name"] = gettext("A profile with this name already exists.")
        for field in self.WEIGHT_FIELDS:
            value = getattr(self, field)
            if value is not None and value < 0:
                errors[field] = gettext("Weights cannot be negative.")
            elif value is not None and not value <= MAX_WEIGHT:
                errors[field] = gettext(
                    "Only the proportions matter: use weights of at most %(max)s."
                ) % {"max": f"{MAX_WEIGHT:g}"}
        if not errors and all(not getattr(self, f) for f in self.WEIGHT_FIELDS):
            raise ValidationError(gettext("At least one weight must be above zero."))
        if not errors:
            segments_error = self._segments_error()
            if segments_error:
                errors["segments"] = segments_error
        if self.diversity == self.Diversity.MMR and not 0 <= self.diversity_param <= 1:
            errors["diversity_param"] = gettext(
                "With MMR, the diversity setting must be between 0 and 1."
            )
        if self.diversity == self.Diversity.CATEGORY_CAP and not (  # NaN, inf fail the range
            1 <= self.diversity_param < 1e9 and self.diversity_param == int(self.diversity_param)
        ):
            errors["diversity_param"] = gettext(
                "The category cap must be a whole number of at least 1."
            )
        if errors:
            raise ValidationError(errors)

    def _segments_error(self):
        """Why ``segments`` cannot be served (``None`` when it can): see
        :func:`~recommendations.blending.core.clean_segment_weights`."""
        try:
            self.segments = clean_segment_weights(self.segments, self.weights)
        except ValueError as exc:
            return str(exc)
        return None

    def make_default(self):
        """Make this profile the default, in one transaction. The rows are written with
        ``update()``, which sends no signal: call
        :func:`~recommendations.services.profiles.make_default`, which also tells every
        process to serve it."""
        with transaction.atomic():
            BlendProfile.objects.filter(is_default=True).exclude(pk=self.pk).update(
                is_default=False
            )
            now = timezone.now()
            BlendProfile.objects.filter(pk=self.pk).update(is_default=True, updated_at=now)
            self.is_default, self.updated_at = True, now


# The experiments' models live in their package (this module would pass 400 lines);
# importing them here registers them with the app and keeps ``recommendations.models``
# the one place to import any model from.
from .experiments.models import (  # noqa: E402, F401
    Experiment,
    ExperimentArm,
    Impression,
    ImpressionOutcome,
)

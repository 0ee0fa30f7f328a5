"""Experiments between blend profiles: the experiment and its arms, the impressions of
the strips served under it, and what shoppers did after them.

Imported by :mod:`recommendations.models` (app label ``recommendations``); other models
are named by string so that this module imports none of them.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from lookalike.conf import app_settings as lookalike_settings

from ..names import name_error


class Experiment(models.Model):
    """A comparison of blend profiles on real shoppers.

    While it runs, every shopper is assigned one arm for good (a hash of the experiment and
    the shopper, see :mod:`recommendations.experiments.assignment`) and the widgets serve
    that arm's profile; every strip shown is recorded as :class:`Impression` rows, and the
    clicks, carts and purchases that follow as :class:`ImpressionOutcome` rows. At most one
    experiment runs at a time (a partial unique constraint), so a shopper is never in two.
    Stopping it makes the chosen winner's profile the default, or leaves the default alone.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        RUNNING = "running", _("Running")
        STOPPED = "stopped", _("Stopped")

    name = models.SlugField(
        _("name"),
        max_length=50,
        unique=True,
        help_text=_("Lowercase letters, digits, hyphens and underscores, e.g. visual-vs-default."),
    )
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    min_impressions = models.PositiveIntegerField(
        _("planned strips per arm"),
        default=2000,
        help_text=_(
            "The sample size planned before starting: an ordinary significance verdict is "
            "given only once every arm has shown this many strips (see the stopping rule)."
        ),
    )
    alpha = models.FloatField(
        _("significance level"),
        default=0.05,
        help_text=_("Two-sided, split between the comparisons with the control arm."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)
    winner = models.ForeignKey(
        "ExperimentArm",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("winner"),
        help_text=_("The arm whose profile became the default when the experiment stopped."),
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="running"),
                name="recommendations_one_running_experiment",
            ),
            models.CheckConstraint(
                condition=models.Q(alpha__gt=0) & models.Q(alpha__lt=0.5),
                name="recommendations_experiment_alpha_range",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        # The constraints hold these too; here they get words an analyst can act on.
        errors = {}
        if message := name_error(self.name):
            errors["name"] = message
        if self.alpha is not None and not 0 < self.alpha < 0.5:
            errors["alpha"] = gettext(
                "The significance level must be above 0 and below 0.5; 0.05 is usual."
            )
        if errors:
            raise ValidationError(errors)


class ExperimentArm(models.Model):
    """One profile in an experiment and the share of shoppers who get it.

    Shares are relative weights (2 and 1 split traffic two thirds to one third). The first
    arm by ``position`` is the control that the others are compared with.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="arms", verbose_name=_("experiment")
    )
    name = models.SlugField(
        _("name"), max_length=50, help_text=_("Lowercase letters, digits, hyphens and underscores.")
    )
    profile = models.ForeignKey(
        "recommendations.BlendProfile",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("profile"),
    )
    share = models.PositiveIntegerField(
        _("traffic share"), default=1, help_text=_("Relative weight of this arm's traffic.")
    )
    position = models.PositiveSmallIntegerField(
        _("position"), default=0, help_text=_("The first arm is the control.")
    )

    class Meta:
        ordering = ["experiment", "position", "pk"]
        verbose_name = _("experiment arm")
        verbose_name_plural = _("experiment arms")
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "name"], name="recommendations_arm_unique_name"
            ),
            models.CheckConstraint(
                condition=models.Q(share__gt=0), name="recommendations_arm_share_positive"
            ),
        ]

    def __str__(self):
        return f"{self.experiment.name}/{self.name}"

    @classmethod
    def running_for(cls, profile):
        """The arm that ``profile`` serves in the running experiment (with its experiment),
        or ``None``: such a profile may not change how it ranks until the experiment stops,
        or the arm's figures would mix two blends."""
        return (
            cls.objects.filter(profile=profile, experiment__status=Experiment.Status.RUNNING)
            .select_related("experiment")
            .first()
        )

    def clean(self):
        errors = {}
        if message := name_error(self.name):
            errors["name"] = message
        if self.share == 0:
            errors["share"] = gettext("A share must be at least 1: an arm of 0 gets nobody.")
        if errors:
            raise ValidationError(errors)


class Impression(models.Model):
    """One product shown at one position of a widget strip served in an experiment.

    The products of one strip share a ``recommendation_id`` (a random token), which the
    strip's links carry as ``?rec=`` so that a click can be tied to what was shown. The
    shopper is stored as :class:`Event` stores one: the user, or the keyed hash of the
    anonymous session key.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="+", verbose_name=_("experiment")
    )
    arm = models.ForeignKey(
        ExperimentArm, on_delete=models.CASCADE, related_name="+", verbose_name=_("arm")
    )
    profile = models.ForeignKey(
        "recommendations.BlendProfile",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("profile"),
    )
    widget = models.CharField(_("widget"), max_length=30)
    position = models.PositiveSmallIntegerField(_("position"))
    product = models.ForeignKey(
        lookalike_settings.product_model_reference(),
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("product"),
    )
    recommendation_id = models.CharField(_("recommendation id"), max_length=32)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("user"),
    )
    session_key = models.CharField(_("session key"), max_length=40, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    simulated = models.BooleanField(_("simulated"), default=False)

    class Meta:
        verbose_name = _("impression")
        verbose_name_plural = _("impressions")
        indexes = [
            models.Index(fields=["recommendation_id"], name="rec_impression_rec_idx"),
            models.Index(fields=["session_key", "product"], name="rec_impression_session_idx"),
            models.Index(fields=["user", "product"], name="rec_impression_user_idx"),
            models.Index(fields=["experiment", "arm"], name="rec_impression_arm_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["recommendation_id", "position"],
                name="recommendations_impression_unique_position",
            )
        ]

    def __str__(self):
        return f"{self.recommendation_id}#{self.position} {self.product_id}"


class ImpressionOutcome(models.Model):
    """What a shopper did after an impression: clicked it, then put it in the cart or
    bought it. Each kind counts once per impression."""

    class Kind(models.TextChoices):
        CLICK = "click", _("Click")
        CART = "cart", _("Added to cart")
        PURCHASE = "purchase", _("Purchase")

    impression = models.ForeignKey(
        Impression, on_delete=models.CASCADE, related_name="outcomes", verbose_name=_("impression")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    event = models.ForeignKey(
        "recommendations.Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("event"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("impression outcome")
        verbose_name_plural = _("impression outcomes")
        constraints = [
            models.UniqueConstraint(
                fields=["impression", "kind"], name="recommendations_outcome_once_per_kind"
            )
        ]

    def __str__(self):
        return f"{self.impression_id} {self.kind}"

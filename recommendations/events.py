"""The one function a shop calls to report what shoppers do.

Shops call :func:`record_event` from their views; they never touch the recommender's
models or training code.
"""

from django.utils import timezone

from .models import Event

KINDS = {choice.value for choice in Event.Kind}


def shopper_key(request):
    """The session key identifying an anonymous shopper, creating the session if needed."""
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


def record_event(request, product, kind, source=""):
    """Record that the shopper behind ``request`` did ``kind`` to ``product``."""
    if kind not in KINDS:
        raise ValueError(f"Unknown event kind {kind!r}; expected one of {sorted(KINDS)}.")
    user = request.user if request.user.is_authenticated else None
    return Event.objects.create(
        user=user,
        session_key=shopper_key(request),
        product=product,
        kind=kind,
        source=source[:50],
        created_at=timezone.now(),
    )

"""The ALS parameters that training accepts: the shop's defaults, and the bounds that keep a
typo (NaN, a factor count of a hundred million) from a traceback after the events are read
or from an allocation of terabytes."""

from ..conf import app_settings

__all__ = ["PARAMETER_LIMITS", "PARAMETER_NAMES", "als_parameters"]

#: The largest value of each ALS parameter that training accepts.
PARAMETER_LIMITS = {"factors": 1024, "iterations": 1000, "regularization": 1e6, "alpha": 1e6}
#: The parameters' names, as the commands' options name them too.
PARAMETER_NAMES = tuple(PARAMETER_LIMITS)


def als_parameters(factors=None, regularization=None, alpha=None, iterations=None):
    """The ALS parameters training uses: those given, the others from
    ``RECOMMENDATIONS_ALS_PARAMETERS``; ``ValueError`` for one outside
    :data:`PARAMETER_LIMITS` (commands call it on their options before any work)."""
    defaults = app_settings.ALS_PARAMETERS
    given = {
        "factors": factors,
        "regularization": regularization,
        "alpha": alpha,
        "iterations": iterations,
    }
    params = {name: defaults[name] if value is None else value for name, value in given.items()}
    params["factors"] = int(params["factors"])
    params["iterations"] = int(params["iterations"])
    params["regularization"] = float(params["regularization"])
    params["alpha"] = float(params["alpha"])
    for name, value in params.items():
        # NaN fails the comparison too; the upper bounds keep a typo from allocating
        # terabytes of factors or running for days.
        if not 0 < value <= PARAMETER_LIMITS[name]:
            raise ValueError(
                f"{name} must be a number above 0 and at most {PARAMETER_LIMITS[name]:g}, "
                f"not {value}."
            )
    return params

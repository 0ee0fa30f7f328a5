from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.db import connection

from .models import SEARCH_CONFIG


class SignupForm(UserCreationForm):
    pass


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=20, initial=1)


class CartQuantityForm(forms.Form):
    """A cart line's new quantity; 0 takes the product out of the cart."""

    quantity = forms.IntegerField(min_value=0, max_value=999)


class SearchForm(forms.Form):
    """The header's search box. A form field refuses what the database cannot store (a NUL
    character) with a message, and keeps the query to a sensible length."""

    q = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        error_messages={
            "max_length": "Your search is too long: use at most %(limit_value)d characters "
            "(it has %(show_value)d).",
            "null_characters_not_allowed": "Your search holds a character that cannot be "
            "searched. Please search again with plain text.",
        },
    )

    #: Words a search may hold. Every word is matched against every product that the others
    #: leave, so a long query costs more than the shopper gains from it.
    MAX_WORDS = 16

    def clean_q(self):
        query = self.cleaned_data["q"]
        words = query.split()
        if len(words) > self.MAX_WORDS:
            raise forms.ValidationError(
                f"Your search has {len(words)} words: use at most {self.MAX_WORDS}."
            )
        # Only "-" makes an exclusion: a search without one costs no second round trip.
        if any(word.startswith("-") for word in words) and _only_exclusions(query):
            # No word to look up in the index: every product would be read to find those
            # without the excluded ones.
            raise forms.ValidationError(
                "Say what you are looking for: words starting with “-” only leave products out."
            )
        return query


def _only_exclusions(query):
    """Whether PostgreSQL's reading of ``query`` (as the search runs it) holds words but
    none that an index can look up: ``-x``, ``-x or -y``, ``-x the`` (a stop word drops)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT numnode(q) > 0 AND querytree(q) = 'T' "
            "FROM websearch_to_tsquery(%s::regconfig, %s) AS q",
            [SEARCH_CONFIG, query],
        )
        return cursor.fetchone()[0]

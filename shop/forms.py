from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    pass


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=20, initial=1)


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

from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    pass


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=20, initial=1)


class SearchForm(forms.Form):
    """The header's search box. A form field refuses what the database cannot store (a NUL
    character) with a message, and keeps the query to a sensible length."""

    q = forms.CharField(required=False, max_length=200, strip=True)

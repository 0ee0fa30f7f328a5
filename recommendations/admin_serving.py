"""Objects the admin will not delete while they serve shoppers, and says why.

The active model version, the default blend profile and a running experiment serve every
shopper (or every shopper of an arm); deleting one would leave the widgets without it. Their
admins refuse it through :class:`ServingObjectAdminMixin`, which answers in words where
Django's admin would say that the account lacks a permission (a bulk delete's page) or
answer a bare 403 (an object's delete page).
"""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.http import HttpResponseRedirect
from django.urls import reverse

__all__ = ["ServingObjectAdminMixin"]


class ServingObjectAdminMixin:
    """For a ``ModelAdmin`` whose objects matching :attr:`serving_filter` must not be
    deleted; :meth:`serving_message` says why, and what to do first."""

    #: ``{field: value}`` of the objects now serving shoppers (plain fields: they are read
    #: off an object as well as used as a filter).
    serving_filter = {}

    def serving_message(self, obj):
        """Why ``obj`` cannot be deleted, and what to do first."""
        raise NotImplementedError

    def _serving(self, queryset):
        return queryset.filter(**self.serving_filter).first()

    def _is_serving(self, obj):
        return all(getattr(obj, name) == value for name, value in self.serving_filter.items())

    def has_delete_permission(self, request, obj=None):
        if obj is not None and self._is_serving(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            delete_selected, name, description = actions["delete_selected"]

            def guarded(modeladmin, request, queryset):
                serving = modeladmin._serving(queryset)
                if serving is not None:
                    modeladmin.message_user(
                        request, modeladmin.serving_message(serving), messages.ERROR
                    )
                    return None
                return delete_selected(modeladmin, request, queryset)

            actions["delete_selected"] = (guarded, name, description)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self._is_serving(obj):
            self.message_user(request, self.serving_message(obj), messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_change",
                    args=[obj.pk],
                    current_app=self.admin_site.name,
                )
            )
        return super().delete_view(request, object_id, extra_context)

"""Objects the admin will not delete while they are in use, and says why.

The active model version, the default blend profile, a running experiment and a queued or
running background job are in use: deleting one would leave the shop's widgets without it,
or a worker without its job. Their admins refuse it through :class:`InUseAdminMixin`, which
answers in words where Django's admin would say that the account lacks a permission (a bulk
delete's page) or answer a bare 403 (an object's delete page).
"""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.http import HttpResponseRedirect
from django.urls import reverse

__all__ = ["InUseAdminMixin"]


class InUseAdminMixin:
    """For a ``ModelAdmin`` whose objects matching :attr:`in_use_filter` must not be
    deleted; :meth:`in_use_message` says why, and what to do first."""

    #: Lookups that select the objects in use (``filter()``'s keyword arguments).
    in_use_filter = {}

    def in_use_message(self, obj):
        """Why ``obj`` cannot be deleted, and what to do first."""
        raise NotImplementedError

    def is_in_use(self, obj) -> bool:
        return self.model._default_manager.filter(pk=obj.pk, **self.in_use_filter).exists()

    def has_delete_permission(self, request, obj=None):
        if obj is not None and self.is_in_use(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            delete_selected, name, description = actions["delete_selected"]

            def guarded(modeladmin, request, queryset):
                in_use = queryset.filter(**modeladmin.in_use_filter).first()
                if in_use is not None:
                    modeladmin.message_user(
                        request, modeladmin.in_use_message(in_use), messages.ERROR
                    )
                    return None
                return delete_selected(modeladmin, request, queryset)

            actions["delete_selected"] = (guarded, name, description)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.is_in_use(obj):
            self.message_user(request, self.in_use_message(obj), messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_change",
                    args=[obj.pk],
                    current_app=self.admin_site.name,
                )
            )
        return super().delete_view(request, object_id, extra_context)

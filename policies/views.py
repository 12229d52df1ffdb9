from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from audit.access import signed_in_with
from policies import selectors, services
from policies.forms import PolicyCreateForm, PolicyForm
from policies.models import DEFAULT_BIZ_TYPE, Policy


@signed_in_with("policies.view_policy")
@require_http_methods(["GET", "HEAD"])
def policy_list(request):
    return render(request, "policies/list.html", {"policies": selectors.policy_list()})


@signed_in_with("policies.view_policy")
@require_http_methods(["GET", "HEAD", "POST"])
def policy_detail(request, biz_type: str):
    policy = get_object_or_404(Policy.objects.select_related("updated_by"), biz_type=biz_type)
    form = None
    if request.method == "POST":
        if not request.user.has_perm("policies.change_policy"):
            raise PermissionDenied
        form = PolicyForm(request.POST, initial=services.policy_as_dict(policy))
        if form.is_valid():
            return _policy_save(request, biz_type, form)
    elif request.user.has_perm("policies.change_policy"):
        form = PolicyForm(initial=services.policy_as_dict(policy))
    return render(request, "policies/detail.html", _detail_context(policy, form))


@signed_in_with(["policies.add_policy", "policies.change_policy"])
@require_http_methods(["GET", "HEAD", "POST"])
def policy_create(request):
    # A new policy starts as a copy of the default one.
    initial = services.policy_as_dict(selectors.policy_for(DEFAULT_BIZ_TYPE)) | {"biz_type": ""}
    data = request.POST if request.method == "POST" else None
    form = PolicyCreateForm(data, initial=initial)
    if form.is_valid():
        return _policy_save(request, form.cleaned_data["biz_type"], form)
    return render(request, "policies/create.html", {"form": form})


def _policy_save(request, biz_type: str, form: PolicyForm):
    policy, created = services.policy_update(
        biz_type=biz_type, data=form.policy_data(), user=request.user
    )
    verb = "created" if created else "saved"
    messages.success(request, f"Policy {policy.biz_type} {verb}.")
    return redirect("policies:detail", biz_type=policy.biz_type)


def _detail_context(policy: Policy, form: PolicyForm | None) -> dict:
    changes = selectors.policy_change_list(policy=policy)
    return {
        "policy": policy,
        "form": form,
        "summary": selectors.policy_summary(policy),
        "history": [(change, selectors.policy_change_diff(change)) for change in changes],
    }

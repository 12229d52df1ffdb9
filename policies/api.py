from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.api import ERROR
from policies import selectors, services
from policies.models import Policy
from policies.serializers import (
    CallbackSecretSerializer,
    PolicyDataSerializer,
    PolicyDetailSerializer,
    PolicySerializer,
    api_errors,
)

METHOD_PERMISSIONS = {"PUT": "policies.change_policy", "DELETE": "policies.delete_policy"}


class PolicyPermission(permissions.BasePermission):
    """Reading needs policies.view_policy; PUT change_policy (and add_policy to create, which
    the view checks once it knows); DELETE delete_policy."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            perm = "policies.view_policy"
        else:
            perm = METHOD_PERMISSIONS.get(request.method, "policies.change_policy")
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(perm))


def _service_errors(error: DjangoValidationError) -> exceptions.ValidationError:
    return exceptions.ValidationError(api_errors(error))


class PolicyList(APIView):
    permission_classes = [PolicyPermission]

    @extend_schema(
        operation_id="policies_list",
        summary="List the policies, the default one first",
        responses={
            200: inline_serializer("PolicyList", {"results": PolicySerializer(many=True)}),
            403: ERROR,
        },
    )
    def get(self, request):
        return Response({"results": PolicySerializer(selectors.policy_list(), many=True).data})


class PolicyDetail(APIView):
    permission_classes = [PolicyPermission]

    @extend_schema(
        operation_id="policies_retrieve",
        summary="The policy of one biz type, with its latest changes",
        description=(
            "404 when the biz type has no policy of its own: the `default` policy applies "
            "to it then (GET /api/v1/policies/default)."
        ),
        responses={200: PolicyDetailSerializer, 403: ERROR, 404: ERROR},
    )
    def get(self, request, biz_type: str):
        return Response(_detail(_policy_or_404(biz_type)))

    @extend_schema(
        operation_id="policies_update",
        summary="Create or replace the policy of one biz type",
        description=(
            "Every key of the body is required but callbackUrl (left out, it keeps its value). "
            "Creating needs policies.add_policy as well as policies.change_policy. The change "
            "is recorded in the policy's history; a PUT that changes nothing records nothing. "
            "Takes effect on the next Audit page load. A callback secret is generated when "
            "the policy first gets a callback URL."
        ),
        request=PolicyDataSerializer,
        responses={
            200: PolicyDetailSerializer,
            201: PolicyDetailSerializer,
            400: ERROR,
            403: ERROR,
        },
    )
    def put(self, request, biz_type: str):
        if not request.user.has_perm("policies.add_policy") and not _exists(biz_type):
            raise exceptions.PermissionDenied("Creating a policy needs policies.add_policy.")
        incoming = PolicyDataSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            policy, created = services.policy_update(
                biz_type=biz_type, data=incoming.validated_data, user=request.user
            )
        except DjangoValidationError as error:
            raise _service_errors(error) from None
        status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(_detail(policy), status=status_code)

    @extend_schema(
        operation_id="policies_destroy",
        summary="Delete the policy of one biz type",
        description=(
            "The biz type falls back to the default policy, which cannot be deleted (400). "
            "The policy's history is deleted with it."
        ),
        responses={
            204: OpenApiResponse(description="Deleted."),
            400: ERROR,
            403: ERROR,
            404: ERROR,
        },
    )
    def delete(self, request, biz_type: str):
        try:
            services.policy_delete(biz_type=biz_type, user=request.user)
        except Policy.DoesNotExist:
            raise _not_found(biz_type) from None
        except DjangoValidationError as error:
            raise _service_errors(error) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class CanChangePolicy(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("policies.change_policy"))


class PolicyCallbackSecret(APIView):
    """The one place the API shows a callback secret in clear: to policy admins who ask."""

    permission_classes = [CanChangePolicy]

    @extend_schema(
        operation_id="policies_callback_secret_retrieve",
        summary="The callback signing secret of one biz type's policy",
        description="Needs policies.change_policy. Receivers verify X-Signature with it.",
        responses={200: CallbackSecretSerializer, 403: ERROR, 404: ERROR},
    )
    def get(self, request, biz_type: str):
        return Response(CallbackSecretSerializer(_policy_or_404(biz_type)).data)

    @extend_schema(
        operation_id="policies_callback_secret_rotate",
        summary="Replace the callback signing secret with a new one",
        description=(
            "Needs policies.change_policy. Deliveries still pending are signed with the new "
            "secret from their next attempt on. Recorded in the policy's history (the time, "
            "never the secret)."
        ),
        request=None,
        responses={200: CallbackSecretSerializer, 403: ERROR, 404: ERROR},
    )
    def post(self, request, biz_type: str):
        try:
            policy = services.policy_secret_rotate(biz_type=biz_type, user=request.user)
        except Policy.DoesNotExist:
            raise _not_found(biz_type) from None
        return Response(CallbackSecretSerializer(policy).data)


def _exists(biz_type: str) -> bool:
    return Policy.objects.filter(biz_type=biz_type).exists()


def _not_found(biz_type: str) -> exceptions.NotFound:
    return exceptions.NotFound(
        f"No policy of its own for bizType {biz_type!r}: the default policy applies."
    )


def _policy_or_404(biz_type: str) -> Policy:
    policy = Policy.objects.select_related("updated_by").filter(biz_type=biz_type).first()
    if policy is None:
        raise _not_found(biz_type)
    return policy


def _detail(policy: Policy) -> dict:
    policy.recent_changes = selectors.policy_change_list(policy=policy)
    return PolicyDetailSerializer(policy).data

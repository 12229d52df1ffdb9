from django.urls import path

from policies import views

app_name = "policies"

urlpatterns = [
    path("", views.policy_list, name="list"),
    # Before the detail route: "new" is a reserved biz type (see services).
    path("new/", views.policy_create, name="create"),
    path("<str:biz_type>/", views.policy_detail, name="detail"),
]

from django.contrib import admin
from django.urls import path

from analysis import views

urlpatterns = [
    path("", views.index, name="index"),
    path("projects/<int:pk>/", views.project_page, name="project"),
    path("projects/<int:pk>/status.json", views.project_json, name="project-json"),
    path("projects/<int:pk>/sequential/", views.run_sequential, name="project-sequential"),
    path("admin/", admin.site.urls),
]

from django.contrib import admin

from analysis.models import Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "attempts", "line_count", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)

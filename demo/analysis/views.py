"""Upload, project page, its JSON, and the sequential comparison run."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from analysis.dispatch import dispatch
from analysis.forms import UploadForm
from analysis.models import Project
from analysis.status import project_status
from analysis.tools import registry
from analysis.uploads import UploadError, parse_upload


def _session(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session.save()
    return str(request.session.session_key)


def _own(request: HttpRequest, pk: int) -> Project:
    return get_object_or_404(Project, pk=pk, owner_session=_session(request))


def index(request: HttpRequest) -> HttpResponse:
    """The upload form and this session's projects; POST creates a project."""
    form = UploadForm(request.POST or None, request.FILES or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            project = create_project(request, form)
        except UploadError as exc:
            error = str(exc)
        else:
            return redirect("project", pk=project.pk)
    elif request.method == "POST":
        error = "; ".join(str(e) for errors in form.errors.values() for e in errors)
    projects = Project.objects.filter(owner_session=_session(request))[:20]
    context = {"form": form, "error": error, "projects": projects, "tools": registry()}
    return render(request, "analysis/index.html", context, status=400 if error else 200)


def create_project(request: HttpRequest, form: UploadForm) -> Project:
    """Validate the upload, then create the project and publish its chord in ONE transaction."""
    upload = form.cleaned_data["file"]
    if upload.size > settings.ANALYSIS_MAX_UPLOAD_BYTES:
        limit = settings.ANALYSIS_MAX_UPLOAD_BYTES / 1e6
        raise UploadError(f"{upload.name!r} is over the size limit of {limit:.1f} MB.")
    data = upload.read()
    parsed = parse_upload(
        upload.name,
        data,
        form.cleaned_data.get("column") or "",
        settings.ANALYSIS_MAX_UPLOAD_BYTES,
        settings.ANALYSIS_MAX_LINES,
    )
    upload.seek(0)
    project = Project(
        name=upload.name,
        text_column=parsed.column or "",
        line_count=len(parsed.lines),
        owner_session=_session(request),
        email=form.cleaned_data.get("email") or "",
    )
    try:
        with transaction.atomic():
            project.file.save(upload.name, upload, save=False)
            project.save()
            dispatch(project)
    except BaseException:
        if project.file:
            project.file.delete(save=False)  # the row rolled back: no orphaned file either
        raise
    return project


def project_page(request: HttpRequest, pk: int) -> HttpResponse:
    project = _own(request, pk)
    return render(request, "analysis/project.html", {"project": project, "tools": registry()})


def project_json(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(project_status(_own(request, pk)))


@require_POST
def run_sequential(request: HttpRequest, pk: int) -> JsonResponse:
    """Start the one-after-another run of the same file (for the timing comparison)."""
    from analysis.tasks import sequential

    project = _own(request, pk)
    with transaction.atomic():
        result = sequential.delay(project.pk)
        Project.objects.filter(pk=project.pk).update(sequential={"task_id": result.id})
    return JsonResponse({"task_id": result.id})

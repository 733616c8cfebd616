from __future__ import annotations

from django import forms


class UploadForm(forms.Form):
    file = forms.FileField(help_text=".txt: one text per line · .csv: pick the text column")
    column = forms.CharField(
        required=False, initial="text", help_text="CSV only: the column holding the text"
    )
    email = forms.EmailField(required=False, help_text="optional: where to send the notice")

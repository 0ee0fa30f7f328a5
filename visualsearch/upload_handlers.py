"""Reading a search photo out of the request: in memory, and never past the size limit.

Django's default upload handlers receive the whole body before any form can look at it,
keeping files up to ``FILE_UPLOAD_MAX_MEMORY_SIZE`` in memory and spooling larger ones to
temporary files: a client could make the shop receive and store gigabytes only to be told
that photos stop at 10 MB. The photo-search page and API install
:class:`PhotoUploadHandler` as the only handler of their requests
(:func:`accept_photo_upload`, :func:`photo_upload`), so that:

* a body whose ``Content-Length`` already announces more than
  ``VISUALSEARCH_MAX_UPLOAD_BYTES`` (plus :data:`FORM_ALLOWANCE` for the other fields and the
  multipart framing) is not read at all;
* a body that turns out larger than it announced is read only up to the limit: counting
  the files' bytes as they arrive, the handler stops the parser there (``StopUpload``).
  WSGI servers cut the body at ``Content-Length``; Django's ASGI handler does not, and a
  chunked body announces no length;
* nothing is ever written to a temporary file: the photo is kept in memory, and the limit
  bounds that memory.

A refused photo reaches the form or the serializer as a :class:`TooLargeUpload`, an empty
stand-in whose ``size`` is what the body announced or had sent when it was stopped, so
:func:`~visualsearch.uploads.read_photo` refuses it with its usual message and code
(``too_large``) and both front ends answer as for any refused photo: HTTP 400, the form's
error on the page, ``{"image": [message]}`` from the API. 413 would name the condition more
precisely, but the page must show its form with the message, and one status for every
refused photo keeps clients simple.

A body that Django's own parser refuses (fields over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too
many fields or files, a malformed multipart body) would reach Django's bare "Bad Request
(400)" page, even under the API; :func:`body_refusal` gives each its message, which the
page shows on its form and the API answers as JSON (``{"detail": message}``).
"""

from __future__ import annotations

import io
from functools import wraps

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import InMemoryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpResponseBadRequest, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from .conf import app_settings

__all__ = [
    "FORM_ALLOWANCE",
    "PHOTO_FIELD",
    "PhotoUploadHandler",
    "TooLargeUpload",
    "accept_photo_upload",
    "body_refusal",
    "photo_upload",
]

#: The form field of the photo, on the page and in the API.
PHOTO_FIELD = "image"
#: Bytes a request may carry besides the photo: the filters, the box, the CSRF token and the
#: multipart headers take well under a kilobyte; a long file name a few hundred bytes more.
FORM_ALLOWANCE = 64 * 1024


class TooLargeUpload(UploadedFile):
    """Stands in for a photo refused for its size: it holds no data, and its ``size`` is
    what the request announced, or what it had sent when it was stopped (more than the
    limit either way), which is what :func:`~visualsearch.uploads.read_photo` checks first.
    """

    def __init__(self, size, name=None):
        super().__init__(file=io.BytesIO(), name=name or "photo", size=size)


class PhotoUploadHandler(FileUploadHandler):
    """Keeps the request's files in memory, up to ``VISUALSEARCH_MAX_UPLOAD_BYTES`` in all.

    ``refused`` is the :class:`TooLargeUpload` standing for the photo once the request was
    refused; ``announced_too_large`` says it was refused from its ``Content-Length``,
    before anything was read.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = app_settings.MAX_UPLOAD_BYTES
        self.received = 0
        self.file = None
        self.refused = None
        self._parsing = False
        meta = request.META if request is not None else {}
        try:
            announced = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            announced = 0  # Django reads such a body as empty
        self.announced = announced
        self.announced_too_large = announced > self.limit + FORM_ALLOWANCE

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        """Refuse the body unread if its length is over the limit; otherwise parse it with
        Django's parser and this handler, and put the stand-in in place of a photo stopped
        on the way (the parser drops a file it was stopped in)."""
        if self._parsing:
            return None  # the nested parser below: Django's own parsing, with this handler
        if content_length > self.limit + FORM_ALLOWANCE:
            self.refused = TooLargeUpload(content_length)
            files = MultiValueDict({PHOTO_FIELD: [self.refused]})
            return QueryDict(encoding=encoding), files
        self._parsing = True
        post, files = MultiPartParser(META, input_data, [self], encoding).parse()
        if self.refused is not None:
            files.setlist(PHOTO_FIELD, [self.refused])
        return post, files

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.file = io.BytesIO()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            # The limit is for every file of the request together: a second file cannot
            # double the memory a request takes.
            self.file.close()
            self.refused = TooLargeUpload(self.received, self.file_name)
            raise StopUpload(connection_reset=True)
        self.file.write(raw_data)
        return None  # kept here: no other handler (no temporary file) sees it

    def file_complete(self, file_size):
        self.file.seek(0)
        return InMemoryUploadedFile(
            file=self.file,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


def accept_photo_upload(request):
    """Make :class:`PhotoUploadHandler` the only upload handler of ``request`` (a Django
    ``HttpRequest`` whose body has not been read yet) and return it."""
    handler = PhotoUploadHandler(request)
    try:
        request.upload_handlers = [handler]
    except AttributeError:
        # A middleware of the host parsed the body before the view: too late to limit
        # how it is read, but read_photo still refuses the photo by its size.
        handler.announced_too_large = False
    return handler


#: What Django's request parser raises for a body it will not read.
BODY_ERRORS = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, MultiPartParserError)


def body_refusal(exc) -> str | None:
    """The message for a body Django's parser refused with ``exc``; ``None`` for any other
    exception."""
    if isinstance(exc, RequestDataTooBig):
        return _("The form's fields are too large; send the photo and a box only.")
    if isinstance(exc, TooManyFieldsSent):
        return _("The form has too many fields; send the photo and a box only.")
    if isinstance(exc, TooManyFilesSent):
        return _("Send one photo at a time.")
    if isinstance(exc, MultiPartParserError):
        return _("The upload could not be read; please send the photo again.")
    return None


def photo_upload(view):
    """Decorate a Django view that receives a search photo.

    Its uploads are read by :class:`PhotoUploadHandler`, and it stays CSRF-protected, with
    one exception: a POST refused from its ``Content-Length`` reaches the view without the
    CSRF check, which would need the token from the body that is never read. Nothing is
    done for such a request but showing the refusal, as its form is invalid; nor for a
    body Django's parser refuses, which reaches the view with ``request.upload_refused``
    set to the message (:func:`body_refusal`).
    """
    protected = csrf_protect(view)

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            return protected(request, *args, **kwargs)
        if accept_photo_upload(request).announced_too_large:
            if not request.content_type.startswith("multipart/"):
                # Upload handlers read multipart bodies only: any other (a form's fields
                # sent urlencoded) is refused here, unread, with its message.
                request.upload_refused = body_refusal(RequestDataTooBig())
                request._post, request._files = QueryDict(), MultiValueDict()
            return view(request, *args, **kwargs)
        try:
            request.POST  # noqa: B018 - parsed here, so that a refusal gets its message
        except UnreadablePostError:
            # The client went away mid-upload: nobody reads the answer; no 500 for it.
            return HttpResponseBadRequest(_("The upload was interrupted."))
        except BODY_ERRORS as exc:
            # As for a photo refused by its size: the view only shows the refusal
            # (``request.upload_refused``), with an empty form.
            request.upload_refused = body_refusal(exc)
            request._post, request._files = QueryDict(), MultiValueDict()
            return view(request, *args, **kwargs)
        return protected(request, *args, **kwargs)

    return wrapper

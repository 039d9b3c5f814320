"""Gallery: every image the studio made (or imported), searchable, re-usable, re-generable.

Thin: each handler calls ``studio.gallery.browse`` / ``GalleryStore`` and turns the result into
widget values. ``build(studio, ctx)``; ``ctx.send_to`` fills the txt2img form.

Public mode: every handler asks the gallery for the visitor's own images only (``owner``, from
``visitors.owner_of``); an id from the page (or the API) that is another visitor's is not found.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from studio.errors import InvalidRequest
from studio.gallery import browse
from studio.requests import Task
from studio.service import Studio
from studio.ui import gallery_import
from studio.ui.errors import shown_as_gr_error
from studio.ui.visitors import owner_of
from studio.ui.widgets import GPU_QUEUE


def build(studio: Studio, ctx) -> None:
    store = browse.store_of(studio)
    can_send = Task.TXT2IMG in getattr(ctx, "forms", {})
    can_send_i2i = Task.IMG2IMG in getattr(ctx, "forms", {})
    can_send_ip = "ip_adapter" in getattr(ctx, "forms", {})
    with gr.Tab("Gallery", id="gallery") as tab:
        if store is None:
            gr.Markdown("This studio was started without a gallery (its image sink keeps no database).")
            return
        work = Path(tempfile.mkdtemp(prefix="studio-gallery-"))      # the app's own: never served as is
        export_dir = work / "exports"                                  # one random folder per export
        missing_image = browse.missing_placeholder(work)                 # stands in for a missing file
        public = getattr(studio, "public", None) is not None       # no other visitor's models, LoRAs or tags
        files = browse.local_files(studio, getattr(ctx, "settings", None),   # models and LoRAs by name or hash
                                   paths=not public)

        def mine(request: gr.Request | None) -> str | None:
            return owner_of(studio, request)
        with gr.Row():
            text = gr.Textbox(value="", label="Search", elem_id="gallery-search", placeholder="red cat -dog lora:detail", info=browse.SEARCH_HELP,
                              scale=4)
            sort = gr.Dropdown(browse.SORT_CHOICES, value="newest", label="Sort", scale=1)
            search = gr.Button("Search", variant="primary", scale=0)
        with gr.Accordion("Filters", open=False):
            with gr.Row():
                model = gr.Dropdown([("any", "")] + ([] if public else store.model_ids()), value="", label="Model",
                                    allow_custom_value=True)
                task = gr.Dropdown([("any", "")] + [t.value for t in Task], value="", label="Task")
                lora = gr.Dropdown([("any", "")] + ([] if public else store.lora_names()), value="", label="LoRA",
                                   allow_custom_value=True)
                size = gr.Textbox(value="", label="Size", placeholder="832x1216", elem_id="gallery-size")
            with gr.Row():
                date_from = gr.Textbox(value="", label="From (YYYY-MM-DD)")
                date_to = gr.Textbox(value="", label="To (YYYY-MM-DD)")
                favourites = gr.Checkbox(label="Favourites only")
                missing = gr.Checkbox(label="Include missing files")
                source = gr.Dropdown(browse.SOURCE_CHOICES, value="", label="Source", elem_id="gallery-source")
        with gr.Row():
            with gr.Column(scale=3):
                grid = gr.Gallery(label="Images", elem_id="gallery-grid", columns=6, height=560, allow_preview=False, object_fit="cover")
                with gr.Row():
                    prev_btn = gr.Button("◀ Previous", size="sm")
                    label = gr.Markdown(elem_id="gallery-page")
                    next_btn = gr.Button("Next ▶", size="sm")
                selection = gr.CheckboxGroup(label="Selection (for export)", choices=[], type="value",
                                             elem_id="gallery-selection")
                with gr.Row():
                    export_btn = gr.Button("Export selection as zip", size="sm", elem_id="gallery-export")
                    export_file = gr.File(label="Export", interactive=False, elem_id="gallery-export-file")
            with gr.Column(scale=2):
                preview = gr.Image(label="Selected", interactive=False, type="filepath", height=360,
                                   elem_id="gallery-preview", elem_classes=["studio-images"])
                facts = gr.Markdown("Click an image to see everything about it.", elem_id="gallery-facts")
                infotext = gr.Textbox(label="Parameters (A1111 infotext)", lines=4, interactive=False, buttons=["copy"])
                with gr.Row():
                    fav_btn = gr.Button("★ Favourite", size="sm", elem_id="gallery-favourite")
                    send_btn = gr.Button("Send to txt2img", size="sm", visible=can_send, elem_id="gallery-send")
                    send_i2i_btn = gr.Button("Send to img2img", size="sm", visible=can_send_i2i,
                                             elem_id="gallery-send-img2img")
                    send_ip_btn = gr.Button("Send to IP-Adapter", size="sm", visible=can_send_ip,
                                            elem_id="gallery-send-ip-adapter")
                    regen_btn = gr.Button("Re-generate", size="sm", variant="primary")
                with gr.Row():
                    tags = gr.Textbox(label="Tags (comma separated)", scale=3)
                    tags_btn = gr.Button("Save tags", size="sm", scale=1)
                with gr.Row():
                    delete_btn = gr.Button("Delete…", size="sm", variant="stop", elem_id="gallery-delete")
                    confirm_btn = gr.Button("Yes, delete file and entry", size="sm", variant="stop", visible=False,
                                            elem_id="gallery-confirm")
                    cancel_btn = gr.Button("Keep it", size="sm", visible=False)
                regen_ids = gr.JSON(value=[], label="Image ids", visible=False)
                regen_out = gr.Gallery(label="Re-generated", columns=2, height=360, object_fit="contain",
                                       visible=False, elem_id="gallery-regenerated", elem_classes=["studio-images"])
                with gr.Accordion("All parameters", open=False):
                    details = gr.JSON()
        page_no = gr.State(1)
        shown_ids = gr.State([])          # the grid's images, in order: a click's index -> image id
        selected = gr.Number(value=None, precision=0, visible=False, label="image id")   # visible to the API

        filters = [text, model, task, lora, favourites, date_from, date_to, size, missing, sort, source]
        listing = [grid, label, selection, page_no, shown_ids]

        def refresh(owner, text, model, task, lora, favourites, date_from, date_to, size, missing, sort, source,
                    page=1):
            query = browse.build_query(text, model, task, lora, favourites, date_from, date_to, size, missing,
                                       sort, page, source=source, owner=owner)
            result = store.search(query)
            if result.page > result.pages:           # e.g. after deleting the last image of the last page
                result = store.search(browse.build_query(text, model, task, lora, favourites, date_from, date_to,
                                                         size, missing, sort, result.pages, source=source,
                                                         owner=owner))
            cells = browse.grid(result, missing_image)
            return (cells, browse.page_label(result), gr.update(choices=browse.selection_choices(result), value=[]),
                    result.page, browse.grid_ids(result, missing_image))

        # gr.Error leaves outputs as they were: after a failed action nothing of the previous one
        # may stay on screen as if it were the answer (e.g. the old page under a bad size filter)
        def nothing_listed():
            return [], "", gr.update(choices=[], value=[]), 1, []

        # explicit parameters, no *args: gradio hands gr.Request by the parameter's place
        @shown_as_gr_error
        def first_page(text, model, task, lora, favourites, date_from, date_to, size, missing, sort, source,
                       request: gr.Request = None):
            return refresh(mine(request), text, model, task, lora, favourites, date_from, date_to, size, missing,
                           sort, source, 1)

        @shown_as_gr_error
        def previous_page(page, text, model, task, lora, favourites, date_from, date_to, size, missing, sort, source,
                          request: gr.Request = None):
            return refresh(mine(request), text, model, task, lora, favourites, date_from, date_to, size, missing,
                           sort, source, max(1, page - 1))

        @shown_as_gr_error
        def next_page(page, text, model, task, lora, favourites, date_from, date_to, size, missing, sort, source,
                      request: gr.Request = None):
            return refresh(mine(request), text, model, task, lora, favourites, date_from, date_to, size, missing,
                           sort, source, page + 1)

        def show(image_id, owner):
            image_id = _id(image_id)
            record = store.get(image_id, owner=owner) if image_id is not None else None
            if record is None:
                return None, "Click an image to see everything about it.", "", "", {}, None
            return (record.path if not record.missing else None, browse.summary(record, files.of_record(record)),
                    record.infotext,
                    ", ".join(record.tags), browse.detail_json(record, paths=not public), record.id)

        detail = [preview, facts, infotext, tags, details, selected]

        def on_select(ids, evt: gr.SelectData, request: gr.Request = None):
            return show(ids[evt.index] if ids and 0 <= evt.index < len(ids) else None, mine(request))

        listed = []
        for trigger in (tab.select, search.click, text.submit, sort.change, favourites.change, missing.change,
                        source.input):
            listed.append(trigger(first_page, filters, listing, api_visibility="private"))
        for control in (model, task, lora):
            listed.append(control.input(first_page, filters, listing, api_visibility="private"))
        listed.append(prev_btn.click(previous_page, [page_no, *filters], listing, api_visibility="private"))
        listed.append(next_btn.click(next_page, [page_no, *filters], listing, api_visibility="private"))
        for event in listed:
            event.failure(nothing_listed, None, listing, queue=False, api_visibility="private")
        grid.select(on_select, shown_ids, detail, api_visibility="private")

        def choices(request: gr.Request = None):
            owner = mine(request)
            return (gr.update(choices=[("any", "")] + store.model_ids(owner=owner)),
                    gr.update(choices=[("any", "")] + store.lora_names(owner=owner)))

        tab.select(choices, None, [model, lora], api_visibility="private")

        @shown_as_gr_error
        def favourite(image_id, request: gr.Request = None):
            owner = mine(request)
            record = store.get(_chosen(image_id), owner=owner)
            if record is None:
                raise InvalidRequest("image", f"image #{image_id} is no longer in the gallery")
            store.set_favourite(record.id, not record.favourite, owner=owner)
            return show(record.id, owner)

        def nothing_shown():
            return show(None, None)

        fav_btn.click(favourite, selected, detail, api_visibility="private").failure(
            nothing_shown, None, detail, queue=False, api_visibility="private")

        @shown_as_gr_error
        def save_tags(image_id, value, request: gr.Request = None):
            owner = mine(request)
            store.set_tags(_chosen(image_id), value.split(","), owner=owner)
            return show(image_id, owner)

        for trigger in (tags_btn.click, tags.submit):
            trigger(save_tags, [selected, tags], detail, api_visibility="private").failure(
                nothing_shown, None, detail, queue=False, api_visibility="private")

        ask = [delete_btn, confirm_btn, cancel_btn]
        delete_btn.click(lambda i: [gr.update(visible=i is None), gr.update(visible=i is not None),
                                    gr.update(visible=i is not None)], selected, ask, api_visibility="private")
        cancel_btn.click(lambda: [gr.update(visible=True), gr.update(visible=False), gr.update(visible=False)],
                         None, ask, api_visibility="private")

        @shown_as_gr_error
        def delete(image_id, text, model, task, lora, favourites, date_from, date_to, size, missing, sort, source,
                   page, request: gr.Request = None):
            image_id, owner = _id(image_id), mine(request)
            if image_id is not None:
                if not store.delete([image_id], owner=owner):
                    raise InvalidRequest("image_id", f"no gallery image {image_id}")
                gr.Info(f"Deleted image #{image_id} (file and entry).")
            return [*show(None, owner), gr.update(visible=True), gr.update(visible=False), gr.update(visible=False),
                    *refresh(owner, text, model, task, lora, favourites, date_from, date_to, size, missing, sort,
                             source, page)]

        confirm_btn.click(delete, [selected, *filters, page_no], [*detail, *ask, *listing],
                          api_visibility="private").failure(nothing_shown, None, detail, queue=False,
                                                            api_visibility="private")

        if can_send:
            @shown_as_gr_error
            def send(image_id, request: gr.Request = None):
                image_id = _id(image_id)
                if image_id is None:
                    raise InvalidRequest("selection", "select an image first")
                record = store.get(image_id, owner=mine(request))
                if record is None:
                    raise InvalidRequest("image_id", f"no gallery image {image_id}")
                return ctx.send_to(browse.form_fields(record), Task.TXT2IMG)

            send_btn.click(send, selected, ctx.send_to_outputs(Task.TXT2IMG), api_visibility="private")

        def send_picture(target, why: str):  # noqa: ANN001, ANN202 - a Task or a tab's key
            """A handler: the selected picture starts ``target``'s form; its parameters come along."""
            def handler(image_id, request: gr.Request = None):
                record = store.get(_chosen(image_id), owner=mine(request))
                if record is None or record.missing:
                    raise InvalidRequest("image", f"image #{image_id} has no file to {why}")
                return ctx.send_to(browse.form_fields(record), target, image=record.path)
            handler.__name__ = f"send_{getattr(target, 'value', target)}"      # send_img2img, send_ip_adapter
            return shown_as_gr_error(handler)

        if can_send_i2i:
            send_i2i_btn.click(send_picture(Task.IMG2IMG, "start from"), selected, ctx.send_to_outputs(Task.IMG2IMG),
                               api_visibility="private")
        if can_send_ip:
            send_ip_btn.click(send_picture("ip_adapter", "use as a reference"), selected,
                              ctx.send_to_outputs("ip_adapter"), api_visibility="private")

        @shown_as_gr_error
        def gallery_regenerate(image_id, request: gr.Request = None):
            """Make image ``image_id`` again (its exact request): the new image and its id."""
            image_id = _chosen(image_id)
            result = browse.regenerate(studio, store, image_id, files, owner=mine(request))
            gr.Info(f"Re-generated #{image_id} as #{result.saved[0].image_id}: {result.message}"
                    if result.saved else result.message)
            return [s.path for s in result.saved], [s.image_id for s in result.saved]

        # values only in the API's returns; showing the view is a separate, private step
        regen_btn.click(gallery_regenerate, selected, [regen_out, regen_ids], api_name="gallery_regenerate",
                        concurrency_id=GPU_QUEUE, concurrency_limit=getattr(ctx, "concurrency", 1)).success(
            lambda: gr.update(visible=True), None, regen_out, queue=False, api_visibility="private").failure(
            lambda: gr.update(value=None, visible=False), None, regen_out, queue=False, api_visibility="private")

        @shown_as_gr_error
        def gallery_search(query: str = "", model: str = "", task: str = "", lora: str = "",
                           favourites_only: bool = False, date_from: str = "", date_to: str = "", size: str = "",
                           include_missing: bool = False, sort: str = "newest", page: float = 1, source: str = "",
                           request: gr.Request = None):
            """The gallery's search for API clients: one page of images, their ids and infotexts."""
            result = store.search(browse.build_query(query, model, task, lora, favourites_only, date_from, date_to,
                                                     size, include_missing, sort, int(page or 1), source=source,
                                                     owner=mine(request)))
            ids = browse.grid_ids(result, missing_image)
            infotexts = {r.id: r.infotext for r in result.items}
            return browse.grid(result, missing_image), ids, [infotexts[i] for i in ids], browse.page_label(result)

        with gr.Group(visible=False):
            api_page = gr.Number(value=1, precision=0, label="page")
            api_out = [gr.Gallery(label="Thumbnails", format="png"), gr.JSON(label="Image ids"),
                       gr.JSON(label="Infotexts"), gr.Textbox(label="Page")]
            api_btn = gr.Button("search (API)")
        api_btn.click(gallery_search, [text, model, task, lora, favourites, date_from, date_to, size, missing, sort,
                                       api_page, source], api_out, api_name="gallery_search")

        @shown_as_gr_error
        def export(ids, request: gr.Request = None):
            return str(browse.export(store, list(ids or []), export_dir, owner=mine(request)))

        export_btn.click(export, selection, export_file, api_visibility="private").failure(
            lambda: None, None, export_file, queue=False, api_visibility="private")

        gallery_import.build(store, ctx)


def _id(value) -> int | None:
    return None if value is None or value == "" else int(value)


def _chosen(value) -> int:
    """The selected image's id; none selected is the user's to fix, not a bug."""
    image_id = _id(value)
    if image_id is None:
        raise InvalidRequest("image", "select an image in the grid first")
    return image_id

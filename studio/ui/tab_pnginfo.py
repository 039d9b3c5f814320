"""PNG Info: drop any image, see the parameters it carries (this studio, A1111/Forge, Fooocus, ComfyUI,
InvokeAI, SwarmUI, NovelAI), send them to txt2img or import the image into the gallery.
``build(studio, ctx)``. API ``/png_info``: Preview, Summary, Infotext, Source, Request, Parameters, Problem."""

from __future__ import annotations

import gradio as gr

from studio.errors import InvalidRequest
from studio.gallery import browse, imports
from studio.requests import Task
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error


def build(studio: Studio, ctx) -> None:
    store = browse.store_of(studio)
    can_send = Task.TXT2IMG in getattr(ctx, "forms", {})
    can_send_i2i = Task.IMG2IMG in getattr(ctx, "forms", {})
    can_send_ip = "ip_adapter" in getattr(ctx, "forms", {})
    with gr.Tab("PNG Info", id="pnginfo"):
        with gr.Row():
            with gr.Column():
                # a File, not an Image: gr.Image re-encodes uploads and drops their text chunks
                upload = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="pnginfo-upload")
                preview = gr.Image(label="Preview", interactive=False, type="filepath", height=320,
                                   elem_id="pnginfo-preview", elem_classes=["studio-images"])
            with gr.Column():
                facts = gr.Markdown(browse.png_info_summary(None), label="Summary", elem_id="pnginfo-facts")
                infotext = gr.Textbox(label="Infotext", lines=6, interactive=False, buttons=["copy"],
                                      elem_id="pnginfo-infotext")
                with gr.Row():
                    source = gr.Textbox(label="Source", interactive=False, max_lines=1, elem_id="pnginfo-source")
                    problem = gr.Textbox(label="Problem", interactive=False, lines=1, max_lines=4,
                                         elem_id="pnginfo-problem", scale=3)
                with gr.Row():
                    send_btn = gr.Button("Send to txt2img", visible=can_send)
                    send_i2i_btn = gr.Button("Send to img2img", visible=can_send_i2i, elem_id="pnginfo-send-img2img")
                    send_ip_btn = gr.Button("Send to IP-Adapter", visible=can_send_ip,
                                            elem_id="pnginfo-send-ip-adapter")
                    import_btn = gr.Button("Import into gallery", visible=store is not None,
                                           elem_id="pnginfo-import")
                result = gr.Markdown(elem_id="pnginfo-result")
                with gr.Accordion("Request", open=False):
                    request = gr.JSON(label="Request")
                with gr.Accordion("Parameters (as the tool wrote them)", open=False):
                    parameters = gr.JSON(label="Parameters")

        @shown_as_gr_error
        def png_info(image):
            """The generation parameters any image carries: which tool wrote them, the request they make
            (or None, with the problem), the tool's own parameters."""
            info = browse.png_info(image)
            outputs = browse.png_info_outputs(info)
            summary = outputs[0] + (_loras(studio, info) if info is not None else "")
            return (image if info is not None else None, summary, *outputs[1:])

        shown = [preview, facts, infotext, source, request, parameters, problem]

        def nothing_read():          # gr.Error leaves outputs as they were: the last file's facts must go
            return None, *browse.png_info_outputs(None)

        upload.change(png_info, upload, shown, api_name="png_info").failure(
            nothing_read, None, shown, queue=False, api_visibility="private")
        # "In the gallery as #3" was about the previous file
        upload.change(lambda: "", None, result, queue=False, api_visibility="private")

        if can_send:
            @shown_as_gr_error
            def send(path):
                info = browse.png_info(path)
                if info is None or info.source == "none":
                    raise InvalidRequest("image", "this image carries no generation parameters to send")
                return ctx.send_to(browse.info_fields(info), Task.TXT2IMG)

            send_btn.click(send, upload, ctx.send_to_outputs(Task.TXT2IMG), api_visibility="private")

        def send_picture(target):  # noqa: ANN001, ANN202 - a Task or a tab's key
            """A handler: any image starts ``target``'s form; the parameters it carries, if any, come along."""
            def handler(path):
                info = browse.png_info(path)
                if info is None:
                    raise InvalidRequest("image", "drop an image first")
                fields = browse.info_fields(info) if info.source != "none" else {}
                return ctx.send_to(fields, target, image=path)
            handler.__name__ = f"send_{getattr(target, 'value', target)}"      # send_img2img, send_ip_adapter
            return shown_as_gr_error(handler)

        if can_send_i2i:
            send_i2i_btn.click(send_picture(Task.IMG2IMG), upload, ctx.send_to_outputs(Task.IMG2IMG),
                               api_visibility="private")
        if can_send_ip:
            send_ip_btn.click(send_picture("ip_adapter"), upload, ctx.send_to_outputs("ip_adapter"),
                              api_visibility="private")

        if store is not None:
            @shown_as_gr_error
            def do_import(path):
                if not path:
                    raise InvalidRequest("image", "drop an image first")
                return imports.import_image(store, path).message   # says so when it was there already

            import_btn.click(do_import, upload, result, api_visibility="private").failure(
                lambda: "", None, result, queue=False, api_visibility="private")


def _loras(studio: Studio, info) -> str:
    """The image's LoRAs, each resolved to a local file (by name, else by A1111's hash) or named as missing."""
    specs = info.fields.get("loras") or ()
    if not specs:
        return ""
    lines = [studio.registry.lora_library.describe(spec)[1] for spec in specs]
    return "  \nLoRAs: " + " · ".join(lines)

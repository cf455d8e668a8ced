"""Partials inside inline content: POST /v1/messages with subject/html/text (no `template`)
whose Mustache includes {{> name}}. They resolve as they do in stored templates: to the
account's live template of that name (its latest version when the message is rendered; the
same part: subject in subject, html in html, text in text), never to another account's; a
missing one renders empty, and with `strict: true` fails the delivery naming it. Rendered
by a posthorn-worker in POSTHORN_DELIVERY=file mode."""
import pytest

import sendlib as sl

FROM = {"email": "orders@shop.example", "name": "Shop"}


@pytest.fixture
def stack(make_posthorn, pg):
    ph = make_posthorn()
    return sl.Stack(ph, pg)


def create(c, name, subject, html=None, text=None):
    r = c.post("/v1/templates", json={"name": name, "subject": subject, "html": html,
                                      "text": text})
    assert r.status_code == 201, r.text
    return r.json()


def send(c, to, data, **content):
    body = {"from": FROM, "to": [to], "data": data}
    body.update(content)
    r = c.post("/v1/messages", json=body)
    assert r.status_code == 202, r.text
    body = r.json()
    return body["id"], body["recipients"][0]["delivery_id"]


def rendered(st, did):
    m = sl.parse_mail(sl.read_mail(st.mail_dir, did))
    text = m.get_body(("plain",))
    html = m.get_body(("html",))
    return (str(m["Subject"]),
            html.get_content().replace("\r\n", "\n").rstrip("\n") if html else None,
            text.get_content().replace("\r\n", "\n").rstrip("\n") if text else None)


def status(c, msg_id):
    return c.get("/v1/messages/" + msg_id).json()["recipients"][0]["status"]


def failed_reason(c, msg_id):
    m = c.get("/v1/messages/" + msg_id).json()
    assert [x["status"] for x in m["recipients"]] == ["failed"], m["recipients"]
    reasons = [e["data"].get("reason") for e in m["events"] if e["type"] == "failed"]
    assert len(reasons) == 1, m["events"]
    return reasons[0]


def test_inline_content_resolves_partials(stack):
    st = stack
    c = st.client
    brand, footer = "brand-" + sl.uid(), "footer-" + sl.uid()
    create(c, brand, subject="Brand-S", html="<b>Brand-H {{shop}}</b>",
           text="Brand-T {{shop}} {{> %s}}" % footer)
    create(c, footer, subject="F-S", html="<i>F-H</i>", text="F-T")
    # Another account's template of the same name is never used.
    other = st.ph.create_account("other-" + sl.uid())
    oc = st.ph.client(st.ph.create_key(other, ["send", "read", "admin"], rate=100000), st.api)
    create(oc, "theirs", subject="THEIRS", html="THEIRS", text="THEIRS")

    data = {"name": "Ann & Co", "shop": "Ölmühle"}
    a_id, a = send(c, "a@example.com", data,
                   subject="Order from {{> %s}}" % brand,
                   html="<p>Hi {{name}}</p>{{> %s}}[{{> nosuch}}][{{> theirs}}]" % brand,
                   text="Hi {{name}} / {{> %s}} / [{{> nosuch}}][{{> theirs}}]" % brand)
    # html only: the generated text part is made from the html with its partials.
    h_id, h = send(c, "h@example.com", data, subject="S",
                   html="<p>Hi {{name}}</p><p>{{> %s}}</p>" % brand)
    # Lax: a missing partial renders empty; strict: it fails the delivery naming it.
    lax_id, lax = send(c, "l@example.com", {}, subject="Hi", text="x {{> nosuch}} y")
    sp_id, _ = send(c, "s@example.com", {}, subject="Hi", text="x {{> nosuch}} y", strict=True)
    # Strict with partials that exist and variables that are given: sent.
    so_id, so = send(c, "o@example.com", data, subject="Hi {{> %s}}" % brand,
                     text="{{> %s}}" % brand, strict=True)

    st.worker = st.ph.worker_proc()
    sl.wait_files(st.mail_dir, [a, h, lax, so], timeout=60, procs=[st.worker])

    assert rendered(st, a) == (
        "Order from Brand-S",
        "<p>Hi Ann &amp; Co</p><b>Brand-H Ölmühle</b>[][]",
        "Hi Ann & Co / Brand-T Ölmühle F-T / [][]"), rendered(st, a)
    subj, html, text = rendered(st, h)
    assert html == "<p>Hi Ann &amp; Co</p><p><b>Brand-H Ölmühle</b></p>", html
    assert "Brand-H Ölmühle" in text and "Hi Ann & Co" in text, text
    assert rendered(st, lax) == ("Hi", None, "x  y"), rendered(st, lax)
    assert rendered(st, so) == ("Hi Brand-S", None, "Brand-T Ölmühle F-T"), rendered(st, so)

    sl.hph.wait_until(lambda: status(c, sp_id) == "failed", timeout=30,
                      what="strict inline message with a missing partial failed")
    reason = failed_reason(c, sp_id)
    assert reason.startswith("text: ") and "nosuch" in reason, reason
    sl.hph.wait_until(lambda: all(status(c, i) == "delivered" for i in (a_id, h_id, lax_id, so_id)),
                      timeout=30, what="inline messages with partials delivered")
    assert st.worker.stop() == 0


def test_inline_partial_is_looked_up_at_render_time(stack):
    """A partial is looked up when the message is rendered, not when it is accepted: a
    version published in between is the one used, and a partial deleted in between renders
    empty (as for stored templates)."""
    st = stack
    c = st.client
    name, gone = "sig-" + sl.uid(), "gone-" + sl.uid()
    t = create(c, name, subject="S1", text="v1 {{name}}")
    g = create(c, gone, subject="G", text="G")
    m_id, did = send(c, "a@example.com", {"name": "Ann"}, subject="Hi",
                     text="<{{> %s}}><{{> %s}}>" % (name, gone))
    r = c.put("/v1/templates/" + t["id"], json={"subject": "S2", "text": "v2 {{name}}"})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert c.delete("/v1/templates/" + g["id"]).status_code == 204
    st.worker = st.ph.worker_proc()
    sl.wait_files(st.mail_dir, [did], timeout=60, procs=[st.worker])
    assert rendered(st, did) == ("Hi", None, "<v2 Ann><>"), rendered(st, did)
    assert st.worker.stop() == 0

"""Sending with a stored template: POST /v1/messages with {"template": {"name"|"id", "version"}}
and data, through a posthorn-worker in POSTHORN_DELIVERY=file mode. The reference is pinned
to a concrete version when the message is accepted, so a version published later does not
change it; partials {{> name}} resolve to the account's templates by name (the same part:
subject in subject, html in html, text in text); a missing partial renders empty, and
strict messages fail with the reason (a missing variable or partial)."""
import pytest

import sendlib as sl

FROM = {"email": "orders@shop.example", "name": "Shop"}


@pytest.fixture
def stack(make_posthorn, pg):
    ph = make_posthorn()
    return sl.Stack(ph, pg)


def create(c, name, subject, html=None, text=None):
    body = {"name": name, "subject": subject, "html": html, "text": text}
    r = c.post("/v1/templates", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def send(c, to, template, data, **extra):
    body = {"from": FROM, "to": [to], "template": template, "data": data}
    body.update(extra)
    r = c.post("/v1/messages", json=body)
    assert r.status_code == 202, r.text
    body = r.json()
    return body["id"], body["recipients"][0]["delivery_id"]


def stored_ref(st, msg_id):
    return st.db.one("SELECT content::text FROM messages WHERE id = %s" % sl.lit(msg_id))


def rendered(st, did):
    m = sl.parse_mail(sl.read_mail(st.mail_dir, did))
    text = m.get_body(("plain",))
    html = m.get_body(("html",))
    return (str(m["Subject"]),
            html.get_content().replace("\r\n", "\n").rstrip("\n") if html else None,
            text.get_content().replace("\r\n", "\n").rstrip("\n") if text else None)


def failed_reason(c, msg_id):
    m = c.get("/v1/messages/" + msg_id).json()
    assert [x["status"] for x in m["recipients"]] == ["failed"], m["recipients"]
    reasons = [e["data"].get("reason") for e in m["events"] if e["type"] == "failed"]
    assert len(reasons) == 1, m["events"]
    return reasons[0]


def test_send_with_stored_template(stack):
    st = stack
    c = st.client
    brand = "brand-" + sl.uid()
    create(c, brand, subject="Brand-S", html="<b>Brand-H {{shop}}</b>", text="Brand-T {{shop}}")
    main = create(c, "receipt-" + sl.uid(),
                  subject="Order {{order.id}} from {{> %s}}" % brand,
                  html="<p>Hi {{name}}</p>{{> %s}}[{{> nosuch}}]" % brand,
                  text="Hi {{name}} / {{> %s}} / [{{> nosuch}}]" % brand)
    assert main["version"] == 1
    data = {"name": "Ann & Co", "shop": "Ölmühle", "order": {"id": "A-1"}}

    # Accepted before the new version: latest (1) pinned, and an explicit version 1.
    a_id, a = send(c, "a@example.com", {"name": main["name"]}, data)
    b_id, b = send(c, "b@example.com", {"id": main["id"], "version": 1}, data)
    assert '"version": 1' in stored_ref(st, a_id) and main["id"] in stored_ref(st, a_id)

    r = c.put("/v1/templates/" + main["id"],
              json={"subject": "V2 {{order.id}}", "text": "v2 {{name}} {{> %s}}" % brand})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    # After it: no version = the new latest; an explicit version still renders that one.
    c_id, cc = send(c, "c@example.com", {"id": main["id"]}, data)
    d_id, d = send(c, "d@example.com", {"name": main["name"], "version": 1}, data)
    assert '"version": 2' in stored_ref(st, c_id)

    # Strict: a missing variable, and a missing partial, fail the delivery naming them.
    sv_id, _ = send(c, "e@example.com", {"id": main["id"], "version": 1},
                    {"name": "Ann", "shop": "x"}, strict=True)
    strict_p = create(c, "strict-" + sl.uid(), subject="Hi", text="x {{> nosuch}} y")
    sp_id, _ = send(c, "f@example.com", {"name": strict_p["name"]}, {}, strict=True)
    lax_id, lax = send(c, "g@example.com", {"name": strict_p["name"]}, {})

    st.worker = st.ph.worker_proc()
    sl.wait_files(st.mail_dir, [a, b, cc, d, lax], timeout=60, procs=[st.worker])

    v1 = ("Order A-1 from Brand-S",
          "<p>Hi Ann &amp; Co</p><b>Brand-H Ölmühle</b>[]",
          "Hi Ann & Co / Brand-T Ölmühle / []")
    assert rendered(st, a) == v1, rendered(st, a)
    assert rendered(st, b) == v1, rendered(st, b)
    assert rendered(st, d) == v1, rendered(st, d)
    assert rendered(st, cc) == ("V2 A-1", None, "v2 Ann & Co Brand-T Ölmühle"), rendered(st, cc)
    assert rendered(st, lax) == ("Hi", None, "x  y"), rendered(st, lax)

    def final():
        return all(c.get("/v1/messages/" + i).json()["recipients"][0]["status"] == "failed"
                   for i in (sv_id, sp_id))
    sl.hph.wait_until(final, timeout=30, what="strict messages failed")
    reason = failed_reason(c, sv_id)
    assert reason.startswith("subject: ") and 'missing variable "order' in reason, reason
    reason = failed_reason(c, sp_id)
    assert reason.startswith("text: ") and "nosuch" in reason, reason
    def delivered():
        return all(c.get("/v1/messages/" + i).json()["recipients"][0]["status"] == "delivered"
                   for i in (a_id, b_id, c_id, d_id, lax_id))
    sl.hph.wait_until(delivered, timeout=30, what="template messages delivered")
    assert st.worker.stop() == 0


def test_deleted_template_still_renders_its_pinned_version(stack):
    """Versions are immutable: a message accepted before its template was deleted still
    renders the version it named."""
    st = stack
    c = st.client
    t = create(c, "gone-" + sl.uid(), subject="Bye {{name}}", text="Text {{name}}")
    m_id, did = send(c, "a@example.com", {"id": t["id"]}, {"name": "Ann"})
    assert c.delete("/v1/templates/" + t["id"]).status_code == 204
    st.worker = st.ph.worker_proc()
    sl.wait_files(st.mail_dir, [did], timeout=60, procs=[st.worker])
    assert rendered(st, did) == ("Bye Ann", None, "Text Ann")
    assert st.worker.stop() == 0


def test_database_down_answers_503(make_pg, make_posthorn):
    """Resolving a reference reads PostgreSQL: while it is down the send answers 503
    (single and batch), never 422; afterwards the reference resolves again."""
    cluster = make_pg()
    ph = make_posthorn(pg_cluster=cluster, env={"POSTHORN_DB_TIMEOUT": "2s"})
    st = sl.Stack(ph, cluster)
    c = st.client
    t = create(c, "down-" + sl.uid(), subject="S", text="T")
    body = {"from": FROM, "to": ["a@example.com"], "template": {"id": t["id"]}}
    assert c.post("/v1/messages", json=body).status_code == 202
    cluster.stop()
    try:
        r = c.post("/v1/messages", json=body)
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.headers.get("Content-Type", "").startswith("application/problem+json")
        r = c.post("/v1/messages/batch", json={"messages": [body, body]})
        assert r.status_code == 503, (r.status_code, r.text)
    finally:
        cluster.start()
    sl.hph.wait_until(lambda: c.post("/v1/messages", json=body).status_code == 202, timeout=30,
                      interval=0.5, what="202 again after the restart")

"""A message posted with html only goes out as multipart/alternative: the worker generates
the text/plain part from the rendered html (links kept with their URL, tags dropped,
entities decoded)."""
import pytest

import sendlib as sl

HTML = ("<html><head><title>Receipt</title><style>p {color: red}</style></head><body>"
        "<h1>Hello {{name}}</h1>"
        "<p>Fish &amp; chips &mdash; 5&nbsp;&euro; &copy; Caf&#233; &#x263A;</p>"
        "<p>Track it <a href=\"https://shop.example/track?id={{order}}&amp;x=1\">here</a>.</p>"
        "<ul><li>one</li><li>two</li></ul>"
        "<script>alert('no')</script></body></html>")

WANT = ("Hello Zoë\n\n"
        "Fish & chips — 5 € © Café ☺\n\n"
        "Track it here (https://shop.example/track?id=A-7&x=1).\n\n"
        "- one\n- two\n")


@pytest.fixture
def worker_stack(make_posthorn, pg):
    ph = make_posthorn()
    st = sl.Stack(ph, pg)
    st.worker = ph.worker_proc()
    return st


def test_html_only_gets_a_generated_text_part(worker_stack):
    st = worker_stack
    r = st.client.post("/v1/messages", json=sl.msg(text=None, html=HTML,
                                                   data={"name": "Zoë", "order": "A-7"}))
    assert r.status_code == 202, (r.status_code, r.text)
    did = r.json()["recipients"][0]["delivery_id"]
    sl.wait_files(st.mail_dir, [did], timeout=60, procs=[st.worker])

    m = sl.parse_mail(sl.read_mail(st.mail_dir, did))
    assert m.get_content_type() == "multipart/alternative", m.get_content_type()
    parts = [p.get_content_type() for p in m.iter_parts()]
    assert parts == ["text/plain", "text/html"], parts
    text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == WANT, text
    html = m.get_body(("html",)).get_content()
    assert "https://shop.example/track?id=A-7&amp;x=1" in html


def test_stored_template_html_only_gets_a_generated_text_part(worker_stack):
    st = worker_stack
    c = st.client
    r = c.post("/v1/templates", json={"name": "html-only-" + sl.uid(), "subject": "Hi",
                                      "html": "<p>Hi {{name}} &raquo; <a href=\"{{url}}\">"
                                              "{{url}}</a></p>"})
    assert r.status_code == 201, r.text
    r = c.post("/v1/messages", json={"from": {"email": "orders@shop.example"},
                                     "to": ["ann@example.com"],
                                     "template": {"id": r.json()["id"]},
                                     "data": {"name": "Ann & Co", "url": "https://x.example/a"}})
    assert r.status_code == 202, r.text
    did = r.json()["recipients"][0]["delivery_id"]
    sl.wait_files(st.mail_dir, [did], timeout=60, procs=[st.worker])
    m = sl.parse_mail(sl.read_mail(st.mail_dir, did))
    assert m.get_content_type() == "multipart/alternative", m.get_content_type()
    text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == "Hi Ann & Co » https://x.example/a\n", text

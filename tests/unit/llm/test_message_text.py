from coditect.llm.base import Message


def test_a_non_utf8_file_name_in_a_prompt_becomes_a_replacement_character():
    name = b"data-\xff.txt".decode("utf-8", "surrogateescape")
    message = Message(role="user", content=f"files: {name}, \ud800")
    assert message.content == "files: data-\ufffd.txt, \ufffd"
    message.content.encode("utf-8")


def test_ordinary_text_is_unchanged():
    assert Message(role="user", content="héllo ✓").content == "héllo ✓"

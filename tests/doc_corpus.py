"""A small corpus of real-looking documents (PDF, DOCX, Markdown, text, HTML, code) written by
the tests, with questions phrased differently from the text and the passage that answers each."""

from __future__ import annotations

from pathlib import Path

FILLER = [
    "The office kitchen is cleaned every Friday afternoon, and the coffee machine descaled "
    "monthly by the facilities team.",
    "Our company was founded in a small workshop and has grown to four locations across "
    "Europe, with teams in engineering, design, sales and support.",
    "Meeting rooms can be booked through the calendar; please release a room if your "
    "meeting is cancelled so colleagues can use it.",
    "The annual summer party takes place by the lake, with food trucks, music and games "
    "for the families of employees.",
    "Parental leave policy: new parents may take up to 16 weeks, agreed with their manager "
    "and the people team well in advance.",
    "The design team reviews the brand guidelines twice a year and publishes the minutes in "
    "the shared drive for every team member.",
    "Security badges must be worn visibly at all times; lost badges are replaced by the "
    "front desk within two working days.",
    "The API documentation portal lists every endpoint with example requests and the "
    "expected responses for each version.",
    "Batteries of company laptops are replaced by IT when their capacity drops below 70 "
    "percent; ask the service desk for a loaner.",
    "Budget requests for training courses go through the learning platform and are "
    "approved each month by the department head.",
]

PDF_PAGES = [
    "Vacation policy. Full-time employees receive 25 days of paid vacation per year. Unused "
    "days can be carried over until March 31 of the following year.",
    "Expenses. Expense reports must be submitted within 30 days through the Ledgerly portal. "
    "Receipts above 50 euros need a scanned copy attached to the report.",
    "Remote work. Employees may work remotely up to three days per week once their "
    "probation period of six months has ended.",
]

# Phrased the way people ask, often without the document's words: a test for vectors as
# much as for keywords.
QUESTIONS = [
    ("How much annual leave do staff get?", "25 days of paid vacation"),
    ("What's the deadline for handing in reimbursement paperwork?",
     "within 30 days through the Ledgerly"),
    ("Can I work from home, and how often?", "work remotely up to three days"),
    ("How long does the Aurora X2 battery last?", "38 hours on a single charge"),
    ("Is water damage covered by the guarantee?", "water damage is excluded"),
    ("What oven temperature should the lemon tart bake at?", "170 degrees Celsius"),
    ("How long should the focaccia dough proof?", "rise for 12 hours"),
    ("When do we switch invoicing platforms?", "scheduled for November 14"),
    ("Who is responsible for the rollback plan?", "Priya owns the rollback"),
    ("How much money does the design group have this quarter?", "48,000 euros"),
    ("What is the API throttling threshold?", "600 requests per minute"),
    ("How many old log files are kept when logs rotate?", "keeping seven backups"),
]


def _filler(n: int) -> list[str]:
    return [FILLER[(n * 3 + i) % len(FILLER)] for i in range(6)]


def write_corpus(folder: Path) -> dict[str, Path]:
    from docx import Document
    from fpdf import FPDF

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for number, text in enumerate(PDF_PAGES):
        pdf.add_page()
        for paragraph in [text, *_filler(number)]:
            pdf.multi_cell(0, 8, paragraph)
            pdf.ln(4)
    files["pdf"] = folder / "handbook.pdf"
    pdf.output(str(files["pdf"]))

    doc = Document()
    doc.add_heading("Aurora X2 headphones", level=1)
    doc.add_heading("Battery", level=2)
    doc.add_paragraph("The Aurora X2 headphones run for 38 hours on a single charge and recharge "
                      "fully in 90 minutes over USB-C.")
    doc.add_paragraph(FILLER[0])
    doc.add_heading("Warranty", level=2)
    doc.add_paragraph("The warranty covers manufacturing defects for 24 months from the date of "
                      "purchase; water damage is excluded.")
    doc.add_paragraph(FILLER[1])
    files["docx"] = folder / "product.docx"
    doc.save(str(files["docx"]))

    files["md"] = folder / "recipes.md"
    files["md"].write_text(
        "# Recipes\n\n## Lemon tart\n\nBlind-bake the shortcrust first. Bake the tart at 170 "
        "degrees Celsius for 25 minutes until the filling is just set.\n\n"
        + "\n\n".join(_filler(1)) + "\n\n## Focaccia\n\nLet the focaccia dough rise for 12 hours "
        "in the fridge, then dimple it with olive oil and flaky salt.\n\n"
        + "\n\n".join(_filler(2)) + "\n")

    files["txt"] = folder / "meeting-notes.txt"
    files["txt"].write_text(
        "Weekly sync\n\nThe migration to the new billing system is scheduled for November 14. "
        "Priya owns the rollback plan in case invoices fail.\n\n" + "\n\n".join(_filler(3))
        + "\n\nBudget review\n\nThe quarterly budget for the design team is 48,000 euros, "
        "mostly for contractors.\n")

    files["html"] = folder / "api.html"
    files["html"].write_text(
        "<html><head><title>API</title><script>var x = 1;</script></head><body>"
        "<h1>API guide</h1><h2>Rate limits</h2><p>Clients may send 600 requests per minute per "
        "API key; exceeding it returns HTTP 429.</p><h2>Other</h2>"
        + "".join(f"<p>{f}</p>" for f in _filler(0)) + "</body></html>")

    files["code"] = folder / "server.py"
    files["code"].write_text(
        "import logging\n\n\ndef rotate_logs(max_bytes=10_485_760, backups=7):\n"
        '    """Rotate logs when they exceed 10 MiB, keeping seven backups."""\n'
        "    return logging.handlers.RotatingFileHandler('app.log', maxBytes=max_bytes,\n"
        "                                                backupCount=backups)\n\n\n"
        "def health():\n    return {'status': 'ok'}\n")
    return files


def write_docx(path: Path, text: str) -> Path:
    from docx import Document

    doc = Document()
    doc.add_paragraph(text)
    doc.save(str(path))
    return path


def lying_zip_bomb_docx(path: Path, claimed: int = 0xFFFF_FFF0) -> Path:
    """A real DOCX with one more part whose central directory entry (and local header) claim
    `claimed` bytes once unpacked while only a few bytes are stored: what a bomb looks like
    to a checker that reads the directory, without anything large on disk or in memory."""
    import struct
    import zipfile

    write_docx(path, "An innocent looking document.")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/bomb.xml", b"<x/>" * 8)
    data = bytearray(path.read_bytes())
    name = b"word/media/bomb.xml"
    central = data.index(b"PK\x01\x02")
    while True:  # find the bomb's central directory entry
        length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + length] == name:
            break
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, claimed)  # uncompressed size
    local = struct.unpack_from("<I", data, central + 42)[0]
    struct.pack_into("<I", data, local + 22, claimed)  # the local header says the same
    path.write_bytes(bytes(data))
    return path


def zeros_zip_bomb_docx(path: Path, megabytes: int) -> Path:
    """A real DOCX carrying `megabytes` MB of zeros deflated to about a thousandth of that: a
    genuine (small) zip bomb, built in milliseconds."""
    import zipfile

    write_docx(path, "An innocent looking document.")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/zeros.bin", bytes(megabytes * 1_000_000))
    return path

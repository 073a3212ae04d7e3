"""Run the function app locally without Azure Functions Core Tools (never deployed).

``python -m devserver --settings local.settings.json``: HTTP functions on http://127.0.0.1:7071/api
(``devserver.http``), plus any extra runners (``devserver.__main__`` explains the hook).
"""

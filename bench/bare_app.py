"""The baseline for bench/ipn.py: a bare Flask app answering every GET/POST with a small JSON body."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@app.route("/<path:path>", methods=["GET", "POST"])
def answer(path):
    request.get_data()
    return jsonify({"RspCode": "00", "Message": "Confirm Success"})

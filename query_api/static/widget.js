// The room widget: polls the archive for the room's activity; Join signs the user's own XMPP account
// into the room through a session the server holds, then shows what that account sees and sends what
// the user writes. Everything is rendered with textContent: nothing from the room is ever markup.
(function () {
  "use strict";

  var root, base, pollMs, ticket = null, cursor = null, session = null, seq = 0, timer = null, stopped = false;
  var generation = 0;  // bumped on join and leave: answers to polls sent before are dropped

  function $(id) { return document.getElementById(id); }

  function headers(json) {
    var h = {};
    if (json) { h["Content-Type"] = "application/json"; }
    if (ticket) { h["X-Widget-Ticket"] = ticket; }
    if (session) { h["X-Widget-Session"] = session; }
    return h;
  }

  function call(method, path, body) {
    return fetch(base + path, {
      method: method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error((data.error && data.error.message) || ("HTTP " + response.status));
          error.status = response.status;
          error.code = data.error && data.error.code;
          throw error;
        }
        return data;
      });
    });
  }

  function setStatus(text) { $("status").textContent = text; }

  function showError(text) {
    var p = $("error");
    p.textContent = text || "";
    p.hidden = !text;
  }

  function timeOf(iso) { return iso ? iso.substring(11, 16) : ""; }

  function describe(item) {
    var nick = item.nick || "someone";
    switch (item.kind) {
      case "joined": return nick + " joined";
      case "left": return nick + " left";
      case "nick_changed": return (item.old_nick || "someone") + " is now known as " + nick;
      case "subject_changed": return nick + " set the subject to: " + (item.body || "");
      case "gap": return "the archive may be missing events here";
      default: return item.kind;
    }
  }

  function render(item) {
    var list = $("activity");
    if (item.kind === "corrected" || item.kind === "removed") {
      var placed = false;
      list.querySelectorAll("li[data-refs]").forEach(function (li) {
        var body = li.querySelector(".body");
        if (body && li.dataset.refs.split(" ").indexOf(item.target) >= 0) {
          placed = true;
          if (item.kind === "removed") {
            body.className = "tombstone";
            body.textContent = "message removed";
          } else {
            body.textContent = item.body;
          }
        }
      });
      if (placed || item.kind === "removed") { return; }
      item = Object.assign({}, item, { kind: "message" });  // a correction of nothing shown: its own line
    }
    var li = document.createElement("li");
    li.className = item.kind;
    if (item.refs && item.refs.length) { li.dataset.refs = item.refs.join(" "); }
    var time = document.createElement("span");
    time.className = "time";
    time.textContent = timeOf(item.at);
    li.appendChild(time);
    if (item.kind === "message") {
      var nick = document.createElement("span");
      nick.className = "nick";
      nick.textContent = item.nick;
      li.appendChild(nick);
      var body = document.createElement("span");
      if (item.removed || item.body === null) {
        body.className = "tombstone";
        body.textContent = "message removed";
      } else {
        body.className = "body";
        body.textContent = item.body;
      }
      li.appendChild(body);
      if (item.edited) {
        var edited = document.createElement("span");
        edited.className = "edited";
        edited.textContent = " (edited)";
        li.appendChild(edited);
      }
    } else {
      li.appendChild(document.createTextNode(describe(item)));
    }
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.appendChild(li);
    while (list.children.length > 300) { list.removeChild(list.firstChild); }
    if (nearBottom) { list.scrollTop = list.scrollHeight; }
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped) { timer = setTimeout(poll, pollMs); }
  }

  function poll() {
    clearTimeout(timer);
    var mine = generation;
    var request = session
      ? call("GET", "/session?after=" + seq).then(function (data) {
          if (mine !== generation) { return; }
          data.items.forEach(function (item) { seq = Math.max(seq, item.seq); render(item); });
        })
      : call("GET", "/activity" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : "")).then(function (data) {
          if (mine !== generation) { return; }
          data.items.forEach(render);
          cursor = data.cursor;
          setStatus("Live · updates every few seconds");
        });
    request.then(function () { if (mine === generation) { schedule(); } }, function (error) {
      if (mine !== generation) { return; }
      if (error.status === 410) {
        session = null;
        cursor = null;
        $("activity").textContent = "";
        showJoin();
        showError(error.message);
        schedule();
      } else if (error.status === 401 || error.status === 404) {
        stopped = true;
        setStatus(error.status === 404 ? "This room is not available." : error.message);
        $("join-button").hidden = true;
      } else {
        setStatus("Reconnecting…");
        schedule();
      }
    });
  }

  function showJoin() {
    $("say").hidden = true;
    $("credentials").hidden = true;
    $("join-button").hidden = false;
  }

  function joined(data) {
    generation += 1;
    session = data.session;
    seq = 0;
    $("activity").textContent = "";
    $("join-button").hidden = true;
    $("credentials").hidden = true;
    $("password").value = "";
    $("say").hidden = false;
    showError("");
    setStatus("In the room as " + data.nick + " (" + data.jid + ")");
    $("message").focus();
    poll();
  }

  function join(credentials) {
    showError("");
    setStatus("Joining…");
    call("POST", "/join", credentials || {}).then(joined, function (error) {
      if (error.code === "credentials_needed") {
        $("join-button").hidden = true;
        $("credentials").hidden = false;
        setStatus("Sign in with your XMPP account to join");
        $("jid").focus();
      } else {
        setStatus("Live · updates every few seconds");
        showError(error.message);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = $("widget");
    base = root.dataset.base;
    pollMs = Number(root.dataset.poll) * 1000;
    var fragment = new URLSearchParams(window.location.hash.substring(1));
    ticket = fragment.get("ticket");
    if (ticket) { history.replaceState(null, "", window.location.pathname + window.location.search); }

    $("join-button").addEventListener("click", function () { join(); });
    $("credentials").addEventListener("submit", function (event) {
      event.preventDefault();
      join({ jid: $("jid").value.trim(), password: $("password").value, nick: $("nick").value.trim() });
    });
    $("say").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("message").value;
      if (!text.trim()) { return; }
      call("POST", "/say", { body: text }).then(function () { $("message").value = ""; }, function (error) {
        showError(error.message);
      });
    });
    $("leave").addEventListener("click", function () {
      call("POST", "/leave", {}).then(function () {
        generation += 1;
        session = null;
        cursor = null;
        $("activity").textContent = "";
        showJoin();
        poll();
      });
    });
    call("GET", "/activity").then(function (data) {
      data.items.forEach(render);
      $("activity").scrollTop = $("activity").scrollHeight;  // the latest at hand
      cursor = data.cursor;
      setStatus("Live · updates every few seconds");
      $("join-button").hidden = false;
      schedule();
    }, function (error) {
      stopped = true;
      setStatus(error.status === 404 ? "This room is not available." : error.message);
    });
  });
})();

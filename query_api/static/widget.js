// The room widget: polls the archive for the room's activity; Join signs the user's own XMPP account
// into the room from this page, over the XMPP server's WebSocket endpoint (xmpp.js), then shows what that
// account sees and sends what the user writes. The archive server holds no XMPP session and never sees
// the password. Everything is rendered with textContent: nothing from the room is ever markup.
(function () {
  "use strict";

  var root, base, room, websocket, pollMs, ticket = null, cursor = null, timer = null, stopped = false;
  var credentials = null;  // from the embedding site (URL fragment), used once by Join
  var xmpp = null, nick = "";  // the user's own connection while joined
  var generation = 0;  // bumped on join and leave: answers to polls sent before are dropped
  var lineOf = new WeakMap();  // a shown line's element -> its line (as the feed sent it, or as heard live)

  function $(id) { return document.getElementById(id); }

  function headers(json) {
    var h = {};
    if (json) { h["Content-Type"] = "application/json"; }
    if (ticket) { h["X-Widget-Ticket"] = ticket; }
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

  // The reader's own clock time (the archive's times are UTC; the line's title keeps UTC).
  function timeOf(iso) {
    var moment = iso ? new Date(iso) : null;
    if (!moment || isNaN(moment.getTime())) { return iso ? iso.substring(11, 16) : ""; }
    return String(moment.getHours()).padStart(2, "0") + ":" + String(moment.getMinutes()).padStart(2, "0");
  }

  function describe(item) {
    var nick = item.nick || "someone";
    switch (item.kind) {
      case "joined": return nick + " joined";
      case "left": return nick + " left";
      case "nick_changed": return (item.old_nick || "someone") + " is now known as " + nick;
      case "subject_changed": return nick + " set the subject to: " + (item.body || "");
      case "gap": return "the archive may be missing events here";
      case "error": return item.body;
      default: return item.kind;
    }
  }

  function orderOf(item) {
    var second = Math.floor(Date.parse(item.at) / 1000);
    return String(second).padStart(12, "0") + ":" + String(item.id).padStart(16, "0");
  }

  // Every item is a whole line (new, or changed since it was shown: it replaces the one
  // with its id) or {kind: "gone", id} for a line taken into another one. A line not shown that comes before
  // the first one shown (an older message corrected or removed, or an old one backfilled) is not shown: the
  // widget's lines begin there, as on a page opened anew, and after Join.
  function render(item) {
    var archived = item.id !== undefined;  // lines straight from XMPP (joined rooms) have no id
    var shown = archived ? $("activity").querySelector('li[data-id="' + Number(item.id) + '"]') : null;
    var first = $("activity").querySelector("li[data-order]");
    if (archived && !shown && first && orderOf(item) < first.dataset.order) { return; }
    show(item, shown);
  }

  // ``item`` in place of the ``shown`` element, or as a new line where it belongs.
  function show(item, shown) {
    var list = $("activity");
    var archived = item.id !== undefined;
    if (item.kind === "gone") {
      if (shown) { list.removeChild(shown); }
      return null;
    }
    var li = document.createElement("li");
    li.className = item.kind;
    if (archived) {
      li.dataset.id = item.id;
      li.dataset.at = item.at;
      li.dataset.order = orderOf(item);
    }
    if (item.refs && item.refs.length) { li.dataset.refs = item.refs.join(" "); }
    var time = document.createElement("span");
    time.className = "time";
    time.textContent = timeOf(item.at);
    if (item.at) { time.title = item.at.replace("T", " ").substring(0, 19) + " UTC"; }
    li.appendChild(time);
    lineOf.set(li, item);  // messages, and the presences that say who holds a nick (messages.js Book.know)
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
        appendLinked(body, item.body);
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
    if (shown) {
      list.replaceChild(li, shown);
      return li;
    }
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    // In the transcript's order (whole second, then id): a backfilled line goes where it belongs.
    var later = null;
    for (var child = list.lastElementChild; archived && child && child.dataset.order && child.dataset.order > li.dataset.order;
         child = child.previousElementSibling) {
      later = child;
    }
    list.insertBefore(li, later);
    while (list.children.length > 300) { list.removeChild(list.firstChild); }
    if (nearBottom) { list.scrollTop = list.scrollHeight; }
    return li;
  }

  // While joined: the lines the room's live corrections and retractions may name (messages.js), and their
  // elements. Lines from the feed are known by "f" and their id, lines heard live by "l" and the order heard.
  var book = null, elementOf = new Map(), heardCount = 0;

  function startBook() {
    book = new ChatArchiveMessages.Book();
    elementOf = new Map();
    var shown = [];
    Array.prototype.forEach.call($("activity").children, function (li) {
      var line = lineOf.get(li);
      if (line) {
        line = Object.assign({}, line, { key: "f" + line.id });
        lineOf.set(li, line);
        elementOf.set(line.key, li);
        shown.push(line);
      }
    });
    book.start(shown);
  }

  // Whether a message the room replays (said before Join) is one the page shows already, or a correction one
  // it applied: by the room's stanza-id where the room sets them, else by any id.
  function shownAlready(item) {
    var refs = item.stanza_id ? [item.stanza_id] : (item.refs || []);
    return refs.some(function (ref) { return book.find(ref); });
  }

  // What the page shows, for Join to ask the room for what came after it (xmpp.js joinRoom's ``since``): the
  // room's stanza-id of the newest message line the archive sent (the greatest id) that has one, or the
  // time of the newest line; null when nothing is shown.
  function shownUntil() {
    var newest = null, at = null;
    book.lines.forEach(function (line) {
      if (line.kind === "message" && line.stanza_id && (!newest || line.id > newest.id)) { newest = line; }
    });
    Array.prototype.forEach.call($("activity").querySelectorAll("li[data-at]"), function (li) {
      if (!at || li.dataset.at > at) { at = li.dataset.at; }
    });
    if (!newest && !at) { return null; }
    return { after: newest && newest.stanza_id, at: newest ? newest.at : at };
  }

  function unshow(line) {
    var li = elementOf.get(line.key);
    if (li && li.parentNode) { li.parentNode.removeChild(li); }
    elementOf.delete(line.key);
  }

  // What the room says while joined: a correction or retraction changes the line it names (from the archive's
  // feed or heard live) as the archive will, by the message model's rule. A line still awaiting the message
  // it names is not shown: the widget cannot tell one naming a message older than its lines (which the
  // archive applies there, showing nothing new) from one naming a message yet to come; when that message
  // comes, the line is applied to it, or shown (somebody else's correction) as the archive's feed shows it.
  function hear(item) {
    if (item.kind !== "message" && item.kind !== "correction" && item.kind !== "retraction") {
      book.know(item);
      show(item, null);
      return;
    }
    if (item.replayed && shownAlready(item)) { return; }
    heardCount += 1;
    var changes = ChatArchiveMessages.step(Object.assign({ key: "l" + heardCount, seq: heardCount }, item), book);
    var evicted = book.apply(changes);
    changes.dropped.concat(evicted).forEach(unshow);
    changes.put.forEach(function (line) {
      var shown = elementOf.get(line.key) || null;
      if (shown && !shown.parentNode) { return; }  // gone off the top (300 lines): older than the widget's lines
      if (line.kind !== "message" || line.awaiting) {
        if (shown) { unshow(line); }
        return;
      }
      elementOf.set(line.key, show(line, shown));
    });
  }

  // Text with its http(s) and xmpp addresses as links (as on the archive's pages): built as DOM
  // nodes, never as markup, and only those schemes become links.
  var ADDRESS = /(?:https?:\/\/|xmpp:)[^\s<>"'`]+/gi;

  // Sentence punctuation after an address is not part of it, nor is a ")" the address did not open.
  function trimAddress(address) {
    for (;;) {
      var last = address.slice(-1);
      var unbalanced = last === ")" && address.split("(").length < address.split(")").length;
      if (".,;:!?'\"".indexOf(last) < 0 && !unbalanced) { return address; }
      address = address.slice(0, -1);
    }
  }

  function appendLinked(parent, text) {
    var at = 0;
    text.replace(ADDRESS, function (found, offset) {
      var address = trimAddress(found);
      if (address.length < 8) { return found; }
      parent.appendChild(document.createTextNode(text.substring(at, offset)));
      var a = document.createElement("a");
      a.href = address;
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
      a.textContent = address;
      parent.appendChild(a);
      at = offset + address.length;
      return found;
    });
    parent.appendChild(document.createTextNode(text.substring(at)));
  }

  function divider(text) {
    var li = document.createElement("li");
    li.className = "divider";
    li.setAttribute("role", "separator");
    li.textContent = text;
    var list = $("activity");
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && !xmpp) { timer = setTimeout(poll, pollMs); }
  }

  function poll() {
    clearTimeout(timer);
    var mine = generation;
    call("GET", "/activity" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : "")).then(function (data) {
      if (mine !== generation) { return; }
      data.items.forEach(render);
      cursor = data.cursor;
      setStatus("Live · updates every few seconds");
      schedule();
    }, function (error) {
      if (mine !== generation) { return; }
      if (error.status === 401 || error.status === 404) {
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
    $("join-button").hidden = !websocket;
  }

  // Back to the archive's feed (after leaving, or when the XMPP connection ended).
  function watchArchive(message) {
    generation += 1;
    xmpp = null;
    cursor = null;
    $("activity").textContent = "";
    showJoin();
    showError(message || "");
    poll();
  }

  function askForCredentials() {
    $("join-button").hidden = true;
    $("credentials").hidden = false;
    setStatus("Sign in with your XMPP account to join");
    $("jid").focus();
  }

  function join(given) {
    var account = given || credentials;
    credentials = null;  // used once: a failed join asks the user
    if (!account || !account.jid || !account.password) { askForCredentials(); return; }
    showError("");
    setStatus("Joining…");
    var wanted = (account.nick || "").trim() || account.jid.split("@")[0];
    var connection = null;
    ChatArchiveXmpp.connect(websocket, account.jid, account.password).then(function (c) {
      connection = c;
      generation += 1;
      clearTimeout(timer);
      xmpp = connection;
      // The backlog being read stays: the room is asked for what came after it only.
      startBook();
      var since = shownUntil();
      divider("You joined: from here on, what your account sees in the room");
      connection.onclose = function (error) {
        if (xmpp === connection) { watchArchive(error.message); }
      };
      return connection.joinRoom(room, wanted.substring(0, 64), hear, since);
    }).then(function (joinedAs) {
      nick = joinedAs;
      $("join-button").hidden = true;
      $("credentials").hidden = true;
      $("password").value = "";
      $("say").hidden = false;
      setStatus("In the room as " + nick + " (" + account.jid + ")");
      $("message").focus();
    }, function (error) {
      if (connection) {
        xmpp = null;
        connection.close();
        watchArchive("");
      }
      setStatus("Live · updates every few seconds");
      if (given) { $("credentials").hidden = false; } else { askForCredentials(); }
      showError(error.message);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = $("widget");
    base = root.dataset.base;
    room = root.dataset.room;
    websocket = root.dataset.websocket;
    pollMs = Number(root.dataset.poll) * 1000;
    var fragment = new URLSearchParams(window.location.hash.substring(1));
    ticket = fragment.get("ticket");
    if (fragment.get("jid")) {
      credentials = { jid: fragment.get("jid"), password: fragment.get("password"), nick: fragment.get("nick") };
    }
    if (window.location.hash) { history.replaceState(null, "", window.location.pathname + window.location.search); }

    $("join-button").addEventListener("click", function () { join(); });
    $("credentials").addEventListener("submit", function (event) {
      event.preventDefault();
      join({ jid: $("jid").value.trim(), password: $("password").value, nick: $("nick").value.trim() });
    });
    $("say").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("message").value;
      if (!text.trim() || !xmpp) { return; }
      xmpp.say(room, text);
      $("message").value = "";
    });
    $("leave").addEventListener("click", function () {
      var connection = xmpp;
      watchArchive("");
      if (connection) { connection.leave(room, nick); }
    });
    call("GET", "/activity").then(function (data) {
      data.items.forEach(render);
      $("activity").scrollTop = $("activity").scrollHeight;  // the latest at hand
      cursor = data.cursor;
      setStatus("Live · updates every few seconds");
      showJoin();
      schedule();
    }, function (error) {
      stopped = true;
      setStatus(error.status === 404 ? "This room is not available." : error.message);
    });
  });
})();

// Live updates of a mission page from server-sent events (no polling): graph node states,
// the timeline, and a reload when the mission ends or waits for review.
(function () {
  "use strict";
  var root = document.getElementById("mission");
  if (!root || root.dataset.live !== "1" || !window.EventSource) return;
  var id = root.dataset.mission;
  var timeline = document.getElementById("timeline");
  var source = new EventSource("/missions/" + encodeURIComponent(id) + "/events?after=" + root.dataset.seq);
  var refreshing = false;

  function refreshGraph() {
    if (refreshing) return;
    refreshing = true;
    fetch("/missions/" + encodeURIComponent(id) + "/graph", { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { document.getElementById("graph-box").innerHTML = html; })
      .finally(function () { refreshing = false; });
  }

  function setNode(ev) {
    var nodes = document.querySelectorAll("#graph g.node");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].getAttribute("data-task") !== ev.task_id) continue;
      var cls = nodes[i].getAttribute("class").replace(/\bst-[a-z]+\b/, "st-" + ev.state);
      nodes[i].setAttribute("class", cls);
      nodes[i].querySelector("text.sub").textContent = ev.state + (ev.agent ? " · " + ev.agent : "");
      return true;
    }
    return false;
  }

  function addToTimeline(ev) {
    var li = document.createElement("li");
    li.className = "ev-" + ev.type.replace(".", "-") + " fresh";
    var t = document.createElement("time");
    t.textContent = (ev.ts || "").slice(11, 19);
    var b = document.createElement("b");
    b.textContent = ev.type;
    li.append(t, " ", b, " ", ev.task_id || "", " ", ev.agent || "", " ", ev.text || "");
    timeline.appendChild(li);
    root.dataset.received = String(Number(root.dataset.received || 0) + 1);
  }

  source.addEventListener("coditect", function (m) {
    var ev = JSON.parse(m.data);
    addToTimeline(ev);
    if (ev.type === "task.state" && !setNode(ev)) refreshGraph();
    if (ev.type === "mission.state") document.getElementById("status").textContent = ev.state.toUpperCase();
    if (ev.type === "agent.act" && ev.action === "review.requested") {
      source.close();
      location.reload();
    }
  });
  source.addEventListener("end", function () {
    source.close();
    location.reload();
  });
})();

/* The "now" map: draws the page's #map-data with Leaflet (static/vendor/leaflet).
 *
 * The roads' lines come from #map-data's roads.url (GeoJSON, cached by the browser); the page
 * gives the state of each road that is not dry. Roads take the CSS classes of their state
 * (seg lvl-N, seg fc, seg nodata, seg dry), stations theirs (st bd-N, st nodata) with a
 * permanent label; the outline (coast) lies under the basemap tiles, so it shows wherever
 * tiles are off or fail. No inline code or styles: the page runs under a strict
 * Content-Security-Policy.
 */
(function () {
  "use strict";

  var ROAD_LABEL_ZOOM = 17; // from this zoom on, the roads in view carry their names
  var FIT_MAX_ZOOM = 16;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  var ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return ENTITIES[c];
    });
  }

  function link(href, text) {
    var a = el("a", null, text);
    a.href = href;
    return a;
  }

  function attribution(tiles) {
    // Text from the config, escaped: Leaflet writes attributions as HTML.
    var text = escapeHtml(tiles.attribution);
    return tiles.link ? '<a href="' + escapeHtml(tiles.link) + '">' + text + "</a>" : text;
  }

  function addTiles(map, tiles, note) {
    var layer = L.tileLayer(tiles.url, {
      maxZoom: tiles.max_zoom,
      attribution: attribution(tiles),
      // Tile servers (OpenStreetMap's policy) want to know the site, whatever the page's policy.
      referrerPolicy: "strict-origin-when-cross-origin",
    });
    layer.on("tileerror", function () {
      note.hidden = false;
    });
    layer.addTo(map);
  }

  function addOutline(map, outline) {
    map.createPane("outline"); // under the tiles (.leaflet-outline-pane in style.css)
    L.geoJSON(outline, {
      pane: "outline",
      interactive: false,
      attribution: "Bờ biển: Natural Earth",
      style: function (feature) {
        return { className: "outline " + feature.properties.kind };
      },
    }).addTo(map);
  }

  var DRY = { css: "seg dry", label: "Không ngập" };
  var NODATA = { css: "seg nodata", label: "Không có dữ liệu" };
  var BLIND = { css: "seg nodata blind", label: "Không có dữ liệu (mất tín hiệu)" };

  /* Each road's state from the page: an open event, no data, blind, or else dry. */
  function stateOf(roads) {
    var states = {};
    roads.nodata.forEach(function (id) {
      states[id] = NODATA;
    });
    roads.blind.forEach(function (id) {
      states[id] = BLIND;
    });
    Object.keys(roads.events).forEach(function (id) {
      states[id] = roads.events[id];
    });
    return function (id) {
      return Object.prototype.hasOwnProperty.call(states, id) ? states[id] : DRY;
    };
  }

  function roadPopup(props, state) {
    var box = el("div", "road-popup");
    box.appendChild(el("strong", null, props.name));
    box.appendChild(el("p", "state", state.label));
    var links = el("p", "links");
    if (state.event) {
      var text = state.forecast ? "Xem dự báo ngập" : "Xem đợt ngập";
      links.appendChild(link("/events/" + state.event, text));
      links.appendChild(document.createTextNode(" · "));
    }
    links.appendChild(link("/roads/" + encodeURIComponent(props.id), "Xem đoạn đường"));
    box.appendChild(links);
    return box;
  }

  function addRoads(map, lines, state) {
    return L.geoJSON(lines, {
      style: function (feature) {
        // Colours, widths and dashes come from the classes (style.css), not from here.
        return { className: state(feature.properties.id).css };
      },
      onEachFeature: function (feature, layer) {
        layer.state = state(feature.properties.id);
        layer.bindPopup(roadPopup(feature.properties, layer.state));
        var name = el("span", null, feature.properties.name); // text, never HTML
        layer.bindTooltip(name, { sticky: true, className: "road-label" });
      },
    }).addTo(map);
  }

  function addStations(map, stations) {
    return L.geoJSON(stations, {
      pointToLayer: function (feature, latlng) {
        var props = feature.properties;
        var marker = L.circleMarker(latlng, { radius: 7, className: props.css });
        marker.bindTooltip(el("span", null, props.name + ": " + props.label), {
          permanent: true,
          direction: "auto", // right of the marker, or left near the right edge
          offset: [8, 0],
          className: "station-label " + props.css,
        });
        return marker;
      },
    }).addTo(map);
  }

  /* At street zoom, the roads in view carry their names (labels for what is visible only). */
  function roadLabels(map, roads) {
    var labels = L.layerGroup().addTo(map);
    function refresh() {
      labels.clearLayers();
      if (map.getZoom() < ROAD_LABEL_ZOOM) return;
      var view = map.getBounds();
      roads.eachLayer(function (layer) {
        var bounds = layer.getBounds();
        if (!view.intersects(bounds)) return;
        var options = { permanent: true, direction: "center", className: "road-label named" };
        var name = el("span", null, layer.feature.properties.name);
        labels.addLayer(L.tooltip(bounds.getCenter(), options).setContent(name));
      });
    }
    map.on("zoomend moveend", refresh);
    refresh();
  }

  /* Fit the flooded roads (water seen, receding too), or every road when none is flooded. */
  function initialView(map, roads, stations) {
    var flooded = L.featureGroup();
    roads.eachLayer(function (layer) {
      if (layer.state.event && !layer.state.forecast) {
        flooded.addLayer(layer);
      }
    });
    var target = flooded.getLayers().length ? flooded : roads;
    var bounds = target.getLayers().length ? target.getBounds() : stations.getBounds();
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: FIT_MAX_ZOOM });
    } else {
      map.setView([9.18, 105.15], 10); // Cà Mau city
    }
  }

  function start() {
    var holder = document.getElementById("ban-do-khung");
    var source = document.getElementById("map-data");
    if (!holder || !source || !window.L) return;
    var data = JSON.parse(source.textContent);
    var map = L.map(holder, { maxZoom: 19, zoomSnap: 0.5 });
    window.floodwatchMap = map; // for the browser tests and curious operators
    if (data.tiles) addTiles(map, data.tiles, document.getElementById("ban-do-nen"));
    if (data.outline) addOutline(map, data.outline);
    var stations = addStations(map, data.stations);
    fetch(data.roads.url, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (lines) {
        var roads = addRoads(map, lines, stateOf(data.roads));
        initialView(map, roads, stations);
        roadLabels(map, roads);
        holder.classList.add("ready");
      })
      .catch(function () {
        document.getElementById("ban-do-loi").hidden = false;
        initialView(map, L.featureGroup(), stations);
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

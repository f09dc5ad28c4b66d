/* The "now" map: draws the page's #map-data (GeoJSON) with Leaflet (static/vendor/leaflet).
 *
 * Roads keep the CSS classes of their state (seg lvl-N, seg fc, seg nodata, seg dry), stations
 * theirs (st bd-N, st nodata) with a permanent label; the outline (coast) lies under the
 * basemap tiles, so it shows wherever tiles are off or fail. No inline code or styles: the
 * page runs under a strict Content-Security-Policy.
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

  function roadPopup(props) {
    var box = el("div", "road-popup");
    box.appendChild(el("strong", null, props.name));
    box.appendChild(el("p", "state", props.label));
    var links = el("p", "links");
    if (props.event) {
      links.appendChild(link(props.event, props.forecast ? "Xem dự báo ngập" : "Xem đợt ngập"));
      links.appendChild(document.createTextNode(" · "));
    }
    links.appendChild(link(props.road, "Xem đoạn đường"));
    box.appendChild(links);
    return box;
  }

  function addRoads(map, roads) {
    return L.geoJSON(roads, {
      style: function (feature) {
        // Colours, widths and dashes come from the classes (style.css), not from here.
        return { className: feature.properties.css };
      },
      onEachFeature: function (feature, layer) {
        layer.bindPopup(roadPopup(feature.properties));
        layer.bindTooltip(feature.properties.name, { sticky: true, className: "road-label" });
      },
    }).addTo(map);
  }

  function addStations(map, stations) {
    return L.geoJSON(stations, {
      pointToLayer: function (feature, latlng) {
        var props = feature.properties;
        var marker = L.circleMarker(latlng, { radius: 7, className: props.css });
        marker.bindTooltip(props.name + ": " + props.label, {
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
        labels.addLayer(L.tooltip(bounds.getCenter(), options).setContent(
          layer.feature.properties.name
        ));
      });
    }
    map.on("zoomend moveend", refresh);
    refresh();
  }

  /* Fit the flooded roads (observed water), or every road when none is flooded. */
  function initialView(map, roads, stations) {
    var flooded = L.featureGroup();
    roads.eachLayer(function (layer) {
      if (/\blvl-[1-9]/.test(layer.feature.properties.css) && !layer.feature.properties.forecast) {
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
    if (data.tiles) addTiles(map, data.tiles, document.getElementById("ban-do-nen"));
    if (data.outline) addOutline(map, data.outline);
    var roads = addRoads(map, data.roads);
    var stations = addStations(map, data.stations);
    initialView(map, roads, stations);
    roadLabels(map, roads);
    holder.classList.add("ready");
    window.floodwatchMap = map; // for the browser tests and curious operators
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

import LBConfig

/// A `geo` variable's value for this request (Geo.swift has the tables).
extension ClientConnection {
    /// The address is the connection's (after realip, as `$remote_addr`) or the variable's, as
    /// nginx's `ngx_http_geo_addr`; from a `proxy` network, X-Forwarded-For's address (the last
    /// one, or with `proxy_recursive` the last one that is not itself a proxy). An address that
    /// is not IP is looked up as 255.255.255.255, and then X-Forwarded-For is not read.
    func evaluateGeo(_ geo: GeoBlock, source: Template) -> [UInt8] {
        var address: [UInt8]?
        if geo.addressFromVariable {
            address = GeoBlock.parseAddress(evaluate(source))
        } else {
            let a = clientAddress.ipBytes
            address = a.isEmpty ? nil : a
        }
        if let a = address, !geo.proxies.isEmpty, let xff = headerValue("x-forwarded-for"),
           let forwarded = RealIP.resolve(connectionBytes: a, trusted: geo.proxies, value: xff, recursive: geo.proxyRecursive) {
            address = forwarded.ipBytes
        }
        return geo.value(for: address)
    }
}

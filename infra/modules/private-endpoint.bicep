// One private endpoint with its DNS zone group, so the service's name resolves to the private IP.
param name string
param location string
param tags object
param subnetId string
param targetResourceId string
@description('blob, queue, table, namespace (Service Bus) or account (Azure OpenAI).')
param groupId string
@description('Private DNS zones the endpoint registers its records in (one config each).')
param privateDnsZoneIds array

resource endpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: targetResourceId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource zoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [for zoneId in privateDnsZoneIds: {
      name: replace(last(split(zoneId, '/')), '.', '-')
      properties: {
        privateDnsZoneId: zoneId
      }
    }]
  }
}

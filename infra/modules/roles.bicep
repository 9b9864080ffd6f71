// Role assignments of the Function App's managed identity on the resources of this resource
// group, each at the narrowest scope that works. Built-in role ids were checked against the
// Azure built-in roles reference (MicrosoftDocs azure-docs, articles/role-based-access-control).

@description('Principal id of the Function App\'s system-assigned identity.')
param principalId string

param storageAccountName string
param eventHubNamespaceName string
param twinHubName string
param lifecycleHubName string
param iotHubName string
param deviceUpdateAccountName string
param maintenanceConfigurationName string

var roles = {
  // Functions host with identity-based AzureWebJobsStorage: blobs (keys, leases, Event Hubs
  // checkpoints, the Flex deployment package), queues (host internals), tables (patchwave).
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  // Twin queries for group membership only: read, not the Twin Contributor's write.
  iotHubDataReader: 'b447c946-2db7-41ec-983d-d8bf3b1c77e3'
  deviceUpdateDeploymentsAdministrator: 'e4237640-0e3d-4a46-8fda-70bc94856432'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource twinHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: twinHubName
}

resource lifecycleHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: lifecycleHubName
}

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource deviceUpdate 'Microsoft.DeviceUpdate/accounts@2023-07-01' existing = {
  name: deviceUpdateAccountName
}

resource maintenanceConfiguration 'Microsoft.Maintenance/maintenanceConfigurations@2023-04-01' existing = {
  name: maintenanceConfigurationName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [
    roles.storageBlobDataOwner
    roles.storageQueueDataContributor
    roles.storageTableDataContributor
  ]: {
    name: guid(storage.id, principalId, role)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource twinReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(twinHub.id, principalId, roles.eventHubsDataReceiver)
  scope: twinHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource lifecycleSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(lifecycleHub.id, principalId, roles.eventHubsDataSender)
  scope: lifecycleHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource twinReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, principalId, roles.iotHubDataReader)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.iotHubDataReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deployments 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deviceUpdate.id, principalId, roles.deviceUpdateDeploymentsAdministrator)
  scope: deviceUpdate
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.deviceUpdateDeploymentsAdministrator)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Cancelling a scheduled run is a PUT on .../applyUpdates/{name} under the maintenance
// configuration (Microsoft.Maintenance/applyUpdates/write). No built-in role grants that
// without far more (Scheduled Patching Contributor does not; Contributor does), so this
// custom role grants exactly it, assigned on this deployment's configuration only.
resource cancelRunsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'patchwave-maintenance-run-operator')
  properties: {
    // Role names are unique in the tenant: the same resource group name in another
    // subscription must not collide.
    roleName: 'patchwave maintenance run operator (${resourceGroup().name}, ${uniqueString(resourceGroup().id)})'
    description: 'Read maintenance configurations and cancel their scheduled runs (applyUpdates).'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Maintenance/maintenanceConfigurations/read'
          'Microsoft.Maintenance/applyUpdates/read'
          'Microsoft.Maintenance/applyUpdates/write'
        ]
        notActions: []
      }
    ]
  }
}

resource cancelRuns 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(maintenanceConfiguration.id, principalId, 'patchwave-maintenance-run-operator')
  scope: maintenanceConfiguration
  properties: {
    // custom role definitions live at subscription level whatever the deployment scope
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cancelRunsRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Name (GUID) of the custom role. It lives at subscription level and stays when the resource group is deleted (README, "Removing it").')
output cancelRunsRoleDefinitionId string = cancelRunsRole.name

// The patching roles of the Function App's identity in one resource group that holds machines
// patchwave patches (deployed once per entry of patchResourceGroups, never subscription-wide).

@description('Principal id of the Function App\'s system-assigned identity.')
param principalId string

var roles = [
  // installPatches / assessPatches on Azure VMs. Update Manager documents this role for VMs;
  // a narrower custom role would need Microsoft.Compute/locations/operations/read at
  // subscription scope to follow the long-running operation.
  '9980e02c-c2be-4d73-94e8-173b1dc7cf3c' // Virtual Machine Contributor
  'cd570a14-e51a-42ad-bac8-bafd67325302' // Azure Connected Machine Resource Administrator (Arc)
  'cd08ab90-6b14-449c-ad9a-8f8e549482c6' // Scheduled Patching Contributor
]

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in roles: {
    name: guid(resourceGroup().id, principalId, role)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]
